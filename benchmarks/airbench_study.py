"""The testbed study (issue 40): airbench94 on CIFAR-10 at 2x and 4x fewer MACs, every ranking
with every allocation and at Dirichlet's own counts, 5 paired fine-tuning seeds, errors right
after pruning and after 1, 3 and 10 epochs, configurations chosen on the validation split.

    python benchmarks/airbench_study.py [--finetune-rows all|best-before|best-pair|none] [--finetune-epochs 1,3]

Runs through the study layer (:mod:`pyro_dirichlet.inference.study`; resumes after a kill from
``runs/airbench94-study/``) and writes ``results/airbench94/study/results.{json,md}``.
``--finetune-rows best-before`` fine-tunes only each ranking's best row per budget by validation
error right after pruning (what this CPU can do in a session; ``all`` is the full protocol).
"""
from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys

import pyro_dirichlet as pdl
from pyro_dirichlet.inference.study import Row, Study
from pyro_dirichlet.inference.study_report import FINETUNE_ROWS, run_and_report

PRETRAINED = "models/weights/airbench94-cifar10"
RANKINGS = ("dirichlet", "l1", "tp-magnitude", "tp-taylor", "tp-hessian", "random")
ALLOCATIONS = ("per-mac", "by-score", "uniform", "likelihood")
OWN = "likelihood-path"  # Dirichlet's allocation from its fitted model; the baselines are measured at its counts
FINETUNE = pdl.TrainConfig(epochs=1, batch_size=512, optimizer="sgd", lr=0.05, weight_decay=5e-4, schedule="onecycle",
                           label_smoothing=0.2, augment=True, channels_last=True)


def rows(rankings=RANKINGS, allocations=ALLOCATIONS, budgets=(2.0, 4.0)) -> tuple[Row, ...]:
    """Every ranking with every allocation, Dirichlet with its own too, then every baseline at
    Dirichlet's likelihood and likelihood-path counts."""
    own = [Row(r, a, b) for b in budgets for r in rankings for a in allocations]
    own += [Row("dirichlet", OWN, b) for b in budgets]
    return tuple(own + [Row(r, f"dirichlet/{a}", b) for a in ("likelihood", OWN) for b in budgets
                        for r in rankings if r != "dirichlet"])


def study(pretrained: str = PRETRAINED, finetune_lr: float = FINETUNE.lr, **subsets) -> Study:
    """``subsets``: ``train_subset``, ``test_subset``, ``score_subset``, ``validation`` (a smoke run's)."""
    return Study(name="airbench94-study", dataset="cifar10", pretrained=pretrained, rows=rows(),
                 finetune=dataclasses.replace(FINETUNE, lr=finetune_lr), **{"score_subset": 5000, **subsets})


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pretrained", default=PRETRAINED)
    ap.add_argument("--finetune-lr", type=float, default=FINETUNE.lr,
                    help="peak learning rate (chosen on the validation split: benchmarks/airbench_finetune_lr.py)")
    ap.add_argument("--finetune-rows", choices=FINETUNE_ROWS, default="all")
    ap.add_argument("--run-dir", default="runs")
    ap.add_argument("--results", default="results/airbench94/study")
    ap.add_argument("--finetune-epochs", type=lambda v: tuple(int(e) for e in v.split(",")), default=None,
                    help="only these of the study's fine-tuning lengths now (comma-separated; default: all)")
    for subset in ("--train-subset", "--test-subset", "--score-subset", "--validation"):
        ap.add_argument(subset, type=int, default=None, help="a smoke run's subset (default: all; 5,000 scored; "
                        "5,000 held out for validation)")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    subsets = {k: v for k in ("train_subset", "test_subset", "score_subset", "validation")
               if (v := getattr(a, k)) is not None}
    command = shlex.join(["python", "benchmarks/airbench_study.py", *(sys.argv[1:] if argv is None else argv)])
    return run_and_report(study(a.pretrained, a.finetune_lr, **subsets), a.results, command, a.finetune_rows, a.run_dir,
                          not a.no_progress, a.finetune_epochs)


if __name__ == "__main__":
    main()
