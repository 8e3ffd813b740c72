"""The report of a study (:mod:`.study`): ``results/<study>/results.json`` and ``results.md``.

Per budget and fine-tuning length E (0: right after pruning): each row's test error, mean and
sd over the seeds, and its validation error. The best configuration of each ranking is the row
with the lowest mean *validation* error at that budget and E; the best baseline is the best
non-Dirichlet ranking's. The Dirichlet-vs-baseline figure is the paired difference of test
errors over the shared seeds, ``d_i = err_baseline,i - err_dirichlet,i`` (positive: Dirichlet
better), its mean with a 95% Student-t interval ``mean +- t_{0.975, n-1} sd / sqrt(n)``.
"""
from __future__ import annotations

import math
import statistics
from collections import defaultdict
from pathlib import Path

from scipy import stats

from pyro_dirichlet.io import save_json, save_text

DIRICHLET = "dirichlet"


def by_length(row: dict) -> dict[int, dict[int, dict]]:
    """``{E: {seed: record}}`` of a row, E = 0 the error before fine-tuning (seed-free: seed 0)."""
    out: dict[int, dict[int, dict]] = {0: {0: {"val_error": row["val_error"], "test_error": row["test_error"]}}}
    for ft in row.get("finetuned", []):
        out.setdefault(ft["epochs"], {})[ft["seed"]] = ft
    return out


def paired(a: dict[int, dict], b: dict[int, dict]) -> dict | None:
    """Mean and 95% interval of ``b - a`` test errors over the seeds both hold (None under 2 seeds;
    E = 0 has one value and gives the plain difference)."""
    seeds = sorted(set(a) & set(b))
    d = [b[s]["test_error"] - a[s]["test_error"] for s in seeds]
    if len(d) == 1:
        return {"mean": d[0], "low": None, "high": None, "seeds": 1}
    if not d:
        return None
    half = stats.t.ppf(0.975, len(d) - 1) * statistics.stdev(d) / math.sqrt(len(d))
    mean = statistics.fmean(d)
    return {"mean": mean, "low": mean - half, "high": mean + half, "seeds": len(d)}


def summarise(result: dict) -> dict:
    """``{budget: {E: {"rows": [...], "best": {ranking: row name}, "dirichlet_vs_best_baseline": ...}}}``."""
    out: dict = defaultdict(dict)
    budgets = sorted({row["row"]["budget"] for row in result["rows"]})
    for budget in budgets:
        rows = [r for r in result["rows"] if r["row"]["budget"] == budget]
        lengths = sorted({e for r in rows for e in by_length(r)})
        for e in lengths:
            table = []
            for r in rows:
                runs = by_length(r).get(e, {})
                if not runs:
                    continue
                test = [v["test_error"] for v in runs.values()]
                val = [v["val_error"] for v in runs.values()]
                table.append({"name": r["name"], "ranking": r["row"]["ranking"], "allocation": r["row"]["allocation"],
                              "architecture": r["architecture"], "macs": r["macs"], "seeds": sorted(runs),
                              "test_mean": statistics.fmean(test), "test_sd": statistics.stdev(test) if len(test) > 1 else None,
                              "val_mean": statistics.fmean(val)})
            best: dict[str, dict] = {}
            for t in table:
                if t["ranking"] not in best or t["val_mean"] < best[t["ranking"]]["val_mean"]:
                    best[t["ranking"]] = t
            entry = {"rows": table, "best": {k: v["name"] for k, v in best.items()}}
            baselines = [v for k, v in best.items() if k != DIRICHLET]
            if DIRICHLET in best and baselines:
                base = min(baselines, key=lambda t: t["val_mean"])
                runs = {r["name"]: by_length(r)[e] for r in rows if e in by_length(r)}
                entry["dirichlet_vs_best_baseline"] = {"dirichlet": best[DIRICHLET]["name"], "baseline": base["name"],
                                                       **(paired(runs[best[DIRICHLET]["name"]], runs[base["name"]]) or {})}
            out[f"{budget:g}x"][e] = entry
    return dict(out)


def _f(value, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def markdown(result: dict, summary: dict, command: str) -> str:
    full = result["full"]
    lines = [f"# Study `{result['study']}`", "", f"Command: `{command}`", "",
             f"Full network: {full['architecture']}, {full['macs']:,} MACs, test error {full['test_error']:.2f}%, "
             f"validation error {full['val_error']:.2f}%. Test errors: mean ± sd over the fine-tuning seeds; "
             "the best configuration of each ranking (**bold**) is chosen on the validation split.", ""]
    for budget, lengths in summary.items():
        for e, entry in lengths.items():
            title = "right after pruning" if e == 0 else f"after {e} epoch{'s' * (e > 1)} of fine-tuning"
            lines += [f"## {budget} fewer MACs, {title}", "",
                      "| ranking | allocation | architecture | MACs | val error % | test error % | seeds |", "|---|---|---|---|---|---|---|"]
            chosen = set(entry["best"].values())
            for t in sorted(entry["rows"], key=lambda t: t["val_mean"]):
                mark = "**" if t["name"] in chosen else ""
                sd = f" ± {t['test_sd']:.2f}" if t["test_sd"] is not None else ""
                lines.append(f"| {mark}{t['ranking']}{mark} | {t['allocation']} | {t['architecture']} | {t['macs']:,} | "
                             f"{t['val_mean']:.2f} | {t['test_mean']:.2f}{sd} | {len(t['seeds'])} |")
            d = entry.get("dirichlet_vs_best_baseline")
            if d and "mean" in d:
                interval = f", 95% interval [{_f(d['low'])}, {_f(d['high'])}]" if d["low"] is not None else ""
                lines += ["", f"Best Dirichlet (`{d['dirichlet']}`) against the best baseline (`{d['baseline']}`): "
                          f"the baseline's test error minus Dirichlet's is {d['mean']:+.2f} points over {d['seeds']} "
                          f"paired seed(s){interval}."]
            lines.append("")
    return "\n".join(lines)


def best_before(result: dict, every: tuple[str, ...] = ()) -> set[str]:
    """Each ranking's best row per budget by validation error right after pruning, and every row of
    the rankings in ``every``."""
    best = {name for lengths in summarise(result).values() for name in lengths[0]["best"].values()}
    return best | {r["name"] for r in result["rows"] if r["row"]["ranking"] in every}


def best_pair(result: dict) -> set[str]:
    """Per budget, the best Dirichlet row and the best baseline row by validation error right after pruning."""
    out = set()
    for lengths in summarise(result).values():
        best, by_name = lengths[0]["best"], {t["name"]: t for t in lengths[0]["rows"]}
        baselines = [name for ranking, name in best.items() if ranking != "dirichlet"]
        out |= {best["dirichlet"], min(baselines, key=lambda n: by_name[n]["val_mean"])}
    return out


FINETUNE_ROWS = ("all", "none", "best-before", "dirichlet+best-before", "best-pair")


def run_and_report(study, out_dir: str | Path, command: str, finetune_rows: str = "all", run_dir: str | Path = "runs",
                   progress: bool = True, lengths: tuple[int, ...] | None = None) -> dict:
    """Run ``study`` right after pruning and report; then fine-tune the rows ``finetune_rows`` names
    (:data:`FINETUNE_ROWS`: ``best-before`` is each ranking's best row per budget by validation error
    before fine-tuning; ``dirichlet+best-before`` adds every Dirichlet row; ``best-pair`` is the best
    Dirichlet and the best baseline row per budget) for the fine-tuning ``lengths`` (default: the
    study's), rewriting the report after each fine-tuning so that a stopped run leaves what it measured."""
    from .study import run_study

    result = run_study(study, run_dir, finetune=False, progress=progress)
    write_report(result, out_dir, command)
    if finetune_rows == "none":
        return result
    every = ("dirichlet",) if finetune_rows == "dirichlet+best-before" else ()
    rows = True if finetune_rows == "all" else best_pair(result) if finetune_rows == "best-pair" \
        else best_before(result, every)
    return run_study(study, run_dir, finetune=rows, progress=progress, lengths=lengths,
                     after_each=lambda partial: write_report(partial, out_dir, command))


def write_report(result: dict, out_dir: str | Path, command: str) -> dict:
    """Write ``results.json`` (the run, its summary, the command) and ``results.md`` into ``out_dir``."""
    summary = summarise(result)
    save_json({**result, "summary": summary, "command": command}, Path(out_dir) / "results.json")
    save_text(markdown(result, summary, command), Path(out_dir) / "results.md")
    return summary
