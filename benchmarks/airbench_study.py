"""The testbed study (issue 40): airbench94 on CIFAR-10 at 2x and 4x fewer MACs, every ranking
with every allocation and at Dirichlet's own counts, 5 paired fine-tuning seeds, errors right
after pruning and after 1, 3 and 10 epochs, configurations chosen on the validation split.

    python benchmarks/airbench_study.py [--no-finetune] [--finetune-rows best-before]

Runs through the study layer (:mod:`pyro_dirichlet.inference.study`; resumes after a kill from
``runs/airbench94-study/``) and writes ``results/airbench94/study/results.{json,md}``.
``--finetune-rows best-before`` fine-tunes only each ranking's best row per budget by validation
error before fine-tuning (the CPU's share of the work; ``all`` is the full protocol).
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import pyro_dirichlet as pdl
from pyro_dirichlet.inference.study import Row, Study, run_study
from pyro_dirichlet.inference.study_report import summarise, write_report

PRETRAINED = "models/weights/airbench94-cifar10"
RANKINGS = ("dirichlet", "l1", "tp-magnitude", "tp-taylor", "tp-hessian", "random")
ALLOCATIONS = ("per-mac", "by-score", "uniform", "likelihood")
BUDGETS = (2.0, 4.0)
FINETUNE = pdl.TrainConfig(epochs=1, batch_size=512, optimizer="sgd", lr=0.05, weight_decay=5e-4, schedule="onecycle",
                           label_smoothing=0.2, augment=True, channels_last=True)


def rows(rankings=RANKINGS, allocations=ALLOCATIONS, budgets=BUDGETS) -> tuple[Row, ...]:
    own = [Row(r, a, b) for b in budgets for r in rankings for a in allocations]
    at_dirichlet = [Row(r, "dirichlet/likelihood", b) for b in budgets for r in rankings if r != "dirichlet"]
    return tuple(own + at_dirichlet)


def study(pretrained: str = PRETRAINED, **kwargs) -> Study:
    return Study(name="airbench94-study", dataset="cifar10", pretrained=pretrained, rows=rows(), finetune=FINETUNE,
                 fit=pdl.FitConfig(), score_subset=5000, **kwargs)


def best_before(result: dict) -> set[str]:
    """Each ranking's best row per budget by validation error before fine-tuning."""
    return {name for lengths in summarise(result).values() for name in lengths[0]["best"].values()}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pretrained", default=PRETRAINED)
    ap.add_argument("--no-finetune", action="store_true", help="only the errors right after pruning")
    ap.add_argument("--finetune-rows", choices=("all", "best-before"), default="all")
    ap.add_argument("--run-dir", default="runs")
    ap.add_argument("--results", default="results/airbench94/study")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    command = "python benchmarks/airbench_study.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    s = study(a.pretrained)
    result = run_study(s, a.run_dir, finetune=False, progress=not a.no_progress)
    write_report(result, a.results, command.strip())
    if not a.no_finetune:
        tuned = best_before(result) if a.finetune_rows == "best-before" else True
        result = run_study(s, a.run_dir, finetune=tuned, progress=not a.no_progress)
        write_report(result, a.results, command.strip())
    print(f"wrote {Path(a.results) / 'results.md'}")
    return result


if __name__ == "__main__":
    main()
