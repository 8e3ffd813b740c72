"""ResNet-56 on CIFAR-10 under the testbed's protocol (issue 40, item 4): the shared pretrained
network (``../shared/pretrained/resnet56-cifar10/``, 11.43% test error) pruned to 2.5x fewer MACs
by the testbed's winning Dirichlet configuration and by the baselines, 3 paired fine-tuning seeds
of 6 epochs (the CIFAR-10 study's recipe, ``benchmarks/cifar10_options.py``), through the study
layer (cached and resumable in ``runs/resnet56-study/``).

    python benchmarks/resnet56_study.py [--rows dirichlet:likelihood-path,tp-magnitude:by-score,...]

The configuration is not chosen here (it comes from the testbed), so the validation split only
reports: this network was pretrained on all 50,000 training images, the 5,000 held out included.
Writes ``results/resnet56/study/results.{json,md}``.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from cifar10_options import recipe  # noqa: E402

import pyro_dirichlet as pdl  # noqa: E402
from pyro_dirichlet.inference.study import Row, Study  # noqa: E402
from pyro_dirichlet.inference.study_report import FINETUNE_ROWS, run_and_report  # noqa: E402

PRETRAINED = "../shared/pretrained/resnet56-cifar10/pretrained-73bd612209"
ROWS = "dirichlet:likelihood-path,dirichlet:per-mac,tp-magnitude:by-score,l1:by-score,tp-taylor:by-score"


def study(rows: str = ROWS, pretrained: str = PRETRAINED, epochs: int = 6) -> Study:
    spec = tuple(Row(*item.split(":"), 2.5) for item in rows.split(","))
    return Study(name="resnet56-study", dataset="cifar10", pretrained=pretrained, rows=spec, seeds=(0, 1, 2),
                 finetune_epochs=(epochs,), finetune=recipe(epochs, 0.1), fit=pdl.FitConfig(epochs=1),
                 score_subset=5000)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default=ROWS, help="ranking:allocation, comma-separated (each at 2.5x fewer MACs)")
    ap.add_argument("--pretrained", default=PRETRAINED)
    ap.add_argument("--epochs", type=int, default=6, help="fine-tuning epochs")
    ap.add_argument("--finetune-rows", choices=FINETUNE_ROWS, default="all")
    ap.add_argument("--run-dir", default="runs")
    ap.add_argument("--results", default="results/resnet56/study")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    command = shlex.join(["python", "benchmarks/resnet56_study.py", *(sys.argv[1:] if argv is None else argv)])
    return run_and_report(study(a.rows, a.pretrained, a.epochs), a.results, command, a.finetune_rows, a.run_dir,
                          not a.no_progress)


if __name__ == "__main__":
    main()
