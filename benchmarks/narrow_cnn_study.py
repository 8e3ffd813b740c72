"""The audio CNN's symptom, rebuilt: a plain BatchNorm CNN whose first layer is 8x wider than the
next (``models/plain_cnn.py``, 64-8-16-16-32) trained here on CIFAR-10 (45,000 images; the same
5,000 held out as the studies' validation split), pruned to half its MACs by every ranking with
every allocation, 3 paired fine-tuning seeds, errors right after pruning and after 1 and 3 epochs.
The question: is Dirichlet's own allocation at least as good as its best other allocation, and
does any allocation starve ``conv2`` (8 channels)?

    python benchmarks/narrow_cnn_study.py [--finetune-rows all|best-before|best-pair|none] [--finetune-epochs 1,3]

Writes ``runs/plain-cnn/`` (pretraining, resumable) and ``results/plain_cnn/study/results.{json,md}``.
"""
from __future__ import annotations

import argparse
import shlex
import sys

import pyro_dirichlet as pdl
from pyro_dirichlet.inference import pipeline
from pyro_dirichlet.inference.study import Row, Study
from pyro_dirichlet.inference.study_report import FINETUNE_ROWS, run_and_report

RANKINGS = ("dirichlet", "l1", "tp-magnitude", "tp-taylor", "random")
ALLOCATIONS = ("per-mac", "by-score", "uniform", "likelihood", "likelihood-path")
RECIPE = pdl.TrainConfig(epochs=15, batch_size=256, optimizer="sgd", lr=0.1, weight_decay=5e-4, schedule="onecycle",
                         label_smoothing=0.1, augment=True)
FINETUNE = pdl.TrainConfig(epochs=1, batch_size=256, optimizer="sgd", lr=0.02, weight_decay=5e-4, schedule="onecycle",
                           label_smoothing=0.1, augment=True)


def pretrained(progress: bool) -> str:
    """The pipeline's pretraining step on the 45,000 images the studies train on (holdout 5,000, seed 1)."""
    cfg = pipeline.PipelineConfig(run_dir="runs/plain-cnn", model="plain_cnn", holdout=5000, fit_data="holdout",
                                  pretrain=RECIPE, target=None, download=False, progress=progress, device="cpu")
    train, test = pipeline.load_data(cfg)
    pipeline.pretrain(cfg, train, test)
    return str(cfg.pretrained_dir)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--finetune-rows", choices=FINETUNE_ROWS, default="all")
    ap.add_argument("--results", default="results/plain_cnn/study")
    ap.add_argument("--finetune-epochs", type=lambda v: tuple(int(e) for e in v.split(",")), default=None,
                    help="only these of the study's fine-tuning lengths now (comma-separated; default: all)")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    command = shlex.join(["python", "benchmarks/narrow_cnn_study.py", *(sys.argv[1:] if argv is None else argv)])
    rows = tuple(Row(r, al, 2.0) for r in RANKINGS for al in ALLOCATIONS)
    study = Study(name="plain-cnn-study", dataset="cifar10", pretrained=pretrained(not a.no_progress), rows=rows,
                  seeds=(0, 1, 2), finetune_epochs=(1, 3), finetune=FINETUNE)
    return run_and_report(study, a.results, command, a.finetune_rows, progress=not a.no_progress,
                          lengths=a.finetune_epochs)


if __name__ == "__main__":
    main()
