"""The results tables of the README and ``docs/results.md``, generated from the results files.

Each table is a function of ``results/*.json``; in a Markdown file it sits between
``<!-- table: NAME -->`` and ``<!-- /table -->``. ``python -m pyro_dirichlet.inference.tables``
rewrites every such block in place; ``--check`` exits 1 naming each block that differs from
what the results files give (``tests/test_tables.py`` runs it), so no figure is typed by hand.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ("README.md", "docs/results.md")
BLOCK = re.compile(r"(<!-- table: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)


def _load(name: str) -> dict:
    return json.loads((ROOT / "results" / name).read_text())


def _num(value, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _m(macs: int) -> str:
    return f"{macs / 1e6:.2f}M" if macs >= 1e6 else f"{macs:,}"


def _table(header: list[str], rows: list[list[str]], sources: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    links = ", ".join(f"[`results/{s}`](results/{s})" for s in sources)
    return "\n".join(lines) + f"\n\nFrom {links}.\n"


def _runs_table(files: dict[str, str], label: Callable[[dict], str], extra: str | None = None) -> str:
    """One row per run of the first file: before fine-tuning, after it in each file (keyed by
    method and target), MACs, parameters; the full network first."""
    data = {col: _load(f) for col, f in files.items()}
    first = next(iter(data.values()))
    full = first.get("baseline") or first.get("full")
    rows = [["full (ours), not pruned", _num(full["error_pct"]), *("—" for _ in files), _m(full["macs"]),
             f"{full['params']:,}"]]
    for run in first["runs"]:
        key = (run["method"], run.get("target"), run.get("allocation"))
        after = []
        for d in data.values():
            match = [r for r in d["runs"] if (r["method"], r.get("target"), r.get("allocation")) == key]
            after.append(_num(match[0]["error_pct"]) if match else "—")
        rows.append([label(run), _num(run["error_pruned_pct"]), *after, _m(run["macs"]), f"{run['params']:,}"])
    header = ["network", "error % before fine-tuning", *(f"error % {col}" for col in files), "MACs", "params"]
    return _table(header, rows, list(dict.fromkeys(files.values())) + ([extra] if extra else []))


def _target(run: dict) -> str:
    target = run.get("target") or run.get("allocation") or ""
    if target.startswith("arch-"):
        return run["method"] if target[5:] in run["method"] else f"{run['method']} at {target[5:]}"
    return f"{run['method']} ({target})"


def airbench() -> str:
    """The testbed's pretraining: errors, size, and its time: measured (the sum of its epochs, with
    light work beside it) and the fastest epoch's time per step times every step (alone)."""
    r = _load("airbench94/pretrain.json")
    steps = [h["steps"] for h in r["history"]]
    per_step = min(h["seconds"] / (s - p) for h, s, p in zip(r["history"], steps, [0, *steps[:-1]]))
    rows = [[r["architecture"], _num(r["test_error"]), _num(r["test_error_tta"]), _num(r["val_error"]),
             _m(r["macs"]), f"{r['params']:,}", f"{r['train_seconds'] / 60:.1f} min",
             f"{per_step * steps[-1] / 60:.1f} min", r["cpu"]]]
    header = ["widths", "test error %", "test error % (TTA)", "validation error %", "MACs", "params",
              "training time (sum of epochs)", "fastest step rate x steps", "CPU"]
    return _table(header, rows, ["airbench94/pretrain.json"])


def lenet5() -> str:
    return _runs_table({"after 20 epochs": "lenet5/lenet5_mnist.json"}, _target)


def resnet56() -> str:
    return _runs_table({"after 2 epochs": "resnet56/cifar10_resnet56.json", "after 6 epochs": "resnet56/cifar10_resnet56_finetune6.json",
                        "after 10 epochs": "resnet56/cifar10_resnet56_finetune10.json"}, _target)


def resnet56_detail() -> str:
    """docs/results.md's ResNet-56 table: every run's widths, errors, size and CPU latency, and the
    literature's anchors as the results file records them."""
    r = _load("resnet56/cifar10_resnet56.json")
    full = r["baseline"]

    def latency(x: dict) -> str:
        return f"{x['latency']['cpu_b1_ms']:.1f} / {x['latency']['cpu_b256_ms']:.0f}"
    rows = [["full network (given)", "16 / 32 / 64", "—", _num(full["error_pct"]), f"{full['macs']:,}",
             f"{full['params']:,}", latency(full)]]
    rows += [[f"`{_target(x)}`", x["architecture"], _num(x["error_pruned_pct"]), _num(x["error_pct"]), f"{x['macs']:,}",
              f"{x['params']:,}", latency(x)] for x in r["runs"]]
    rows += [[f"{name} (anchor)", "—", "—", _num(error), macs, "—", "—"] for name, error, macs, _ in r["paper"]]
    header = ["method", "inner widths", "error before fine-tuning %", "error after 2 epochs %", "MACs", "params",
              "CPU ms, batch 1 / 256"]
    return _table(header, rows, ["resnet56/cifar10_resnet56.json"])


def vgg16() -> str:
    return _runs_table({"after 4 epochs, `s` form": "vgg16/cifar10_vgg16.json"}, _target)


def vgg16_rks() -> str:
    return _runs_table({"after 4 epochs, `rKs` form": "vgg16/cifar10_vgg16_rks.json"}, _target)


def vit() -> str:
    return _runs_table({"after 12 epochs (mean of 3 seeds)": "vit/vit_cifar10_finetune12_seeds.json"}, _target,
                       extra="vit/vit_cifar10_finetune12_taylor_seeds.json") + _vit_taylor()


def _vit_taylor() -> str:
    run = _load("vit/vit_cifar10_finetune12_taylor_seeds.json")["runs"][0]
    return (f"\n{_target(run)}: {_num(run['error_pruned_pct'])}% before fine-tuning, "
            f"{_num(run['error_pct'])}% after 12 epochs (mean of 3 seeds), {_m(run['macs'])} MACs.\n")


def _study(name: str) -> str:
    """A study's best row of each ranking (chosen on validation) per budget and fine-tuning length,
    with the paired difference of the best Dirichlet row to the best baseline row."""
    r = _load(name)
    rows = []
    for budget, lengths in r["summary"].items():
        for e, entry in sorted(lengths.items(), key=lambda kv: int(kv[0])):
            by_name = {t["name"]: t for t in entry["rows"]}
            d = entry.get("dirichlet_vs_best_baseline") or {}
            for ranking, row_name in sorted(entry["best"].items(), key=lambda kv: by_name[kv[1]]["val_mean"]):
                t = by_name[row_name]
                sd = f" ± {t['test_sd']:.2f}" if t["test_sd"] is not None else ""
                diff = ""
                if ranking == "dirichlet" and "mean" in d:
                    diff = f"{d['mean']:+.2f}" + (f" [{d['low']:+.2f}, {d['high']:+.2f}]" if d["low"] is not None else "")
                rows.append([budget, "before" if e == "0" else e, ranking, t["allocation"], t["architecture"],
                             _num(t["val_mean"]), _num(t["test_mean"]) + sd, str(len(t["seeds"])), diff])
    header = ["fewer MACs", "fine-tuning epochs", "ranking (its best row)", "allocation", "architecture",
              "val error %", "test error %", "seeds", "best baseline minus Dirichlet, points [95% interval]"]
    return _table(header, rows, [name])


TABLES: dict[str, Callable[[], str]] = {"airbench94": airbench, "lenet5": lenet5, "resnet56": resnet56,
                                        "resnet56-detail": resnet56_detail,
                                        "vgg16": vgg16, "vgg16-rks": vgg16_rks, "vit": vit,
                                        "airbench94-study": lambda: _study("airbench94/study/results.json"),
                                        "plain-cnn-study": lambda: _study("plain_cnn/study/results.json")}


def render(text: str, doc: str = "README.md") -> str:
    """``text`` (the document ``doc``, whose folder the links are relative to) with every table block
    regenerated (an unknown name raises, naming it)."""
    up = "../" * doc.count("/")

    def block(m: re.Match) -> str:
        name = m.group("name")
        if name not in TABLES:
            raise KeyError(f"unknown table {name!r} in a <!-- table: --> block; known: {sorted(TABLES)}")
        return m.group(1) + TABLES[name]().replace("](results/", f"]({up}results/") + m.group(4)
    return BLOCK.sub(block, text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only report the blocks that differ; exit 1 if any")
    a = ap.parse_args(argv)
    stale = []
    for doc in DOCUMENTS:
        path = ROOT / doc
        text = path.read_text()
        new = render(text, doc)
        if new != text:
            stale.append(doc)
            if not a.check:
                path.write_text(new)
    if a.check and stale:
        print(f"tables out of date with results/ in {', '.join(stale)}: run python -m pyro_dirichlet.inference.tables")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
