"""What varies in the main job's result: ``pyro-dirichlet run`` (``scripts/run.sh``, LeNet-5 on
MNIST, the embedded defaults) with 1 and 2 CPU threads at seed 0 (the same arithmetic in another
order: what another machine's kernels change) and with seeds 0-2 at 2 threads (what a different
seed changes). Each variant has its own run folder under ``--run-root`` and resumes there.
Writes ``results/speed/reproducibility.{json,md}``.

    python benchmarks/reproducibility.py
"""
from __future__ import annotations

import argparse
import shlex
import statistics
import sys
from pathlib import Path

import torch

from pyro_dirichlet.inference import cli, pipeline
from pyro_dirichlet.io import save_json, save_text

FIELDS = (("full error %", lambda r: r["baseline"]["error_pct"]),
          ("error right after pruning %", lambda r: r["run"]["error_pruned_pct"]),
          ("error after fine-tuning %", lambda r: r["run"]["error_pct"]))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default="1:0,2:0,2:1", help="threads:seed pairs, comma-separated")
    ap.add_argument("--run-root", default="runs/reproducibility")
    ap.add_argument("--results", default="results/speed")
    a = ap.parse_args(argv)
    rows = []
    for variant in a.variants.split(","):
        threads, seed = (int(v) for v in variant.split(":"))
        torch.set_num_threads(threads)
        args = cli.build_parser().parse_args(
            ["run", "--seed", str(seed), "--run-dir", f"{a.run_root}/threads-{threads}-seed-{seed}", "--no-progress"])
        result = pipeline.run(cli.config_from_args(args))
        rows.append({"threads": threads, "seed": seed, **{name: get(result) for name, get in FIELDS},
                     "architecture": result["run"]["architecture"]})
        print(rows[-1], flush=True)
    report = {"command": "python " + " ".join(shlex.quote(x) for x in [sys.argv[0], *(argv or sys.argv[1:])]),
              "rows": rows}
    out = Path(a.results)
    save_json(report, out / "reproducibility.json")
    save_text(markdown(report), out / "reproducibility.md")
    print(markdown(report))
    return report


def spread(rows: list[dict], name: str) -> str:
    values = [r[name] for r in rows]
    return f"{max(values) - min(values):.2f}" if len(values) > 1 else "—"


def markdown(report: dict) -> str:
    rows = report["rows"]
    names = [name for name, _ in FIELDS]
    lines = [f"Command: `{report['command']}`. The main job (`scripts/run.sh`: LeNet-5-Caffe on MNIST, "
             "12 epochs of pretraining, `mean` fit, pruned to 5-8-45-15, 20 epochs of fine-tuning).", "",
             "| threads | seed | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for r in rows:
        lines.append(f"| {r['threads']} | {r['seed']} | " + " | ".join(f"{r[n]:.2f}" for n in names) + " |")
    seed0 = [r for r in rows if r["seed"] == 0]
    two = [r for r in rows if r["threads"] == 2]
    lines += ["", "| spread (max - min, points) | " + " | ".join(names) + " |", "|---|" + "---|" * len(names),
              "| threads, seed 0 | " + " | ".join(spread(seed0, n) for n in names) + " |",
              "| seeds, 2 threads | " + " | ".join(spread(two, n) for n in names) + " |"]
    if len(two) > 1:
        lines += ["", "Seed sd at 2 threads: " + ", ".join(
            f"{n} {statistics.stdev(r[n] for r in two):.2f}" for n in names) + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
