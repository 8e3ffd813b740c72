"""The compression curve's report: seeds aggregated, the markdown tables and the figure
(:mod:`.compare` runs the harness)."""
from __future__ import annotations

import statistics
from pathlib import Path

from pyro_dirichlet import criteria
from pyro_dirichlet.io import atomic_write


def normalisation_of(method: str) -> str:
    """How a method's scores compare across sites (the Dirichlet variants: the ``dirichlet`` criterion's)."""
    return criteria.CRITERIA.get(method, criteria.CRITERIA["dirichlet"]).normalisation


def aggregate(runs: list[dict]) -> dict[tuple[str, str, int], dict]:
    """``{(method, allocation, budget): mean and sd over seeds of both errors and of the MACs,
    and every seed's architecture}``."""
    groups: dict[tuple[str, str, int], list[dict]] = {}
    for r in runs:
        groups.setdefault((r["method"], r["allocation"], r["budget_macs"]), []).append(r)
    table = {}
    for key, rs in groups.items():
        def stats(field_name):
            values = [r[field_name] for r in rs]
            return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)
        table[key] = {"pruned": stats("error_pruned_pct"), "finetuned": stats("error_finetuned_pct"),
                      "macs": stats("macs"), "architectures": [r["architecture"] for r in rs], "seeds": len(rs)}
    return table


ALLOCATION_TITLE = {"same": "same per-layer counts for every method",
                    "own": "each method's own allocation (its normalised scores ranked across layers)",
                    "mass": "Dirichlet's posterior-mass allocation (the same share of each layer's mass)",
                    "cost": "each method's own ranking per MAC (normalised score / MACs of one channel)"}


def markdown(result: dict) -> str:
    table = aggregate(result["runs"])
    full = result["full"]
    lines = [f"Command: `{result['command']}` (device: {result['device']}). Full LeNet-5-Caffe {full['architecture']}: "
             f"{full['error_finetuned_pct']:.2f}% error, {full['macs']:,} MACs. Fine-tuning: "
             f"{result['config']['finetune_epochs']} epochs, last epoch reported.", ""]
    for allocation in dict.fromkeys(a for _, a, _ in table):
        keys = [k for k in table if k[1] == allocation]
        budgets = sorted({b for _, _, b in keys}, reverse=True)
        methods = list(dict.fromkeys(m for m, _, _ in keys))
        if allocation == "same":
            heads = [f"{b:,} ({table[(methods[0], allocation, b)]['architectures'][0]})" for b in budgets]
        else:
            heads = [f"≤ {b:,}" for b in budgets]
        cell = {m: [table[(m, allocation, b)] for b in budgets] for m in methods}
        for kind, title in (("finetuned", "after fine-tuning"), ("pruned", "right after pruning (no fine-tuning)")):
            lines += _table(f"**{ALLOCATION_TITLE[allocation]}**: test error (%) {title}, mean ± sd over seeds:",
                            heads, {m: [f"{c[kind][0]:.2f} ± {c[kind][1]:.2f}" for c in cell[m]] for m in methods})
        if allocation != "same":
            lines += _table("Architectures each method chose (seed 0) and mean MACs over seeds:", heads,
                            {(f"{m} ({normalisation_of(m)})" if allocation in ("own", "cost") else m):
                             [f"{c['architectures'][0]} ({c['macs'][0]:,.0f})" for c in cell[m]] for m in methods})
    lines += ["Supplement Table 1 points on LeNet-5-Caffe, recounted by this project's counter (paper FLOPs = MACs + "
              "one add per output bias element; stated FLOPs: see inference/paper.py):", "",
              "| method | architecture | error (%) | stated FLOPs | MACs (ours) | paper FLOPs (ours) | params (ours) |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {p['method']} | {p['architecture']} | {p['error_pct']} | "
              f"{'—' if p['stated_flops'] is None else format(p['stated_flops'], ',')} | {p['macs']:,} | "
              f"{p['paper_flops']:,} | {p['params']:,} |" for p in result["paper_points"]]
    return "\n".join(lines) + "\n"


def _table(title: str, heads: list[str], rows: dict[str, list[str]]) -> list[str]:
    """Markdown lines: ``title``, then one row per method."""
    return [title, "", "| method | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|",
            *(f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows.items()), ""]


def plot(result: dict, path: Path) -> Path:
    """Test error after fine-tuning against MACs (log axis), one curve per method, one panel
    per allocation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    table = aggregate(result["runs"])
    allocations = list(dict.fromkeys(a for _, a, _ in table))
    fig, axes = plt.subplots(1, len(allocations), figsize=(7 * len(allocations), 5), squeeze=False)
    for ax, allocation in zip(axes[0], allocations):
        methods = list(dict.fromkeys(m for m, a, _ in table if a == allocation))
        for m in methods:
            keys = sorted((k for k in table if k[:2] == (m, allocation)), key=lambda k: table[k]["macs"][0])
            macs = [table[k]["macs"][0] for k in keys]
            mean = [table[k]["finetuned"][0] for k in keys]
            sd = [table[k]["finetuned"][1] for k in keys]
            style = "-o" if m.startswith("dirichlet") else "--."
            ax.errorbar(macs, mean, yerr=sd, fmt=style, capsize=2, label=m, linewidth=1.2, markersize=4)
        for p in result["paper_points"]:
            ax.plot(p["macs"], p["error_pct"], "k*", markersize=8)
            ax.annotate(p["method"], (p["macs"], p["error_pct"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.axhline(result["full"]["error_finetuned_pct"], color="gray", linewidth=0.8, label="full network")
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis_formatter in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
            axis_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.set_xlabel("MACs (log; mean over seeds)")
        ax.set_title(f"{allocation}: {ALLOCATION_TITLE[allocation]}", fontsize=9)
        ax.legend(fontsize=7, ncol=2)
    axes[0][0].set_ylabel("test error after fine-tuning (%, log)")
    fig.suptitle("LeNet-5-Caffe on MNIST (stars: supplement Table 1)")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path
