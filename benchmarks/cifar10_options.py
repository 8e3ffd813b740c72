"""The options of the CIFAR-10 study (``benchmarks/cifar10_network.py``) and its recipe, parsed once
into a :class:`StudyConfig`; ``benchmarks/cifar10_ablation.py`` shares ``add_run_args``, ``recipe``
and ``run_config``."""
from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path

import pyro_dirichlet as pdl
from pyro_dirichlet.allocation import MIN_KEEP
from pyro_dirichlet.inference import paper, pipeline
from pyro_dirichlet.models import build_model

METHODS = ("dirichlet-mean", "dirichlet-mc", "l1", "taylor")
BASELINES = ("l1", "taylor", "tp-magnitude")  # tp-magnitude: Torch-Pruning's GroupMagnitudeImportance (DepGraph)
EVERY_GROUP = "dirichlet-mean-every-group"  # residual networks: every channel group switched, residual streams too
RESIDUAL = ("resnet56", "wrn28_10")
ALL_METHODS = (*METHODS, EVERY_GROUP, "tp-magnitude")


def recipe(epochs: int, lr: float) -> pdl.TrainConfig:
    """The fast CIFAR-10 recipe of ``benchmarks/cifar10_training.py`` (SGD, one-cycle, crop+flip)."""
    return pdl.TrainConfig(epochs=epochs, batch_size=512, optimizer="sgd", lr=lr, weight_decay=5e-4,
                           schedule="onecycle", label_smoothing=0.1, augment=True, channels_last=True)


def add_run_args(ap: argparse.ArgumentParser) -> None:
    """The options both CIFAR-10 scripts share: the network, a given pretrained folder, data, device, folders."""
    ap.add_argument("--widths", type=int, default=None, help="every prunable layer this wide (a small stand-in)")
    ap.add_argument("--pretrained", default=None, help="start from this pretrained folder (a pretrained-<hash>/ that "
                    "the pretraining step wrote, e.g. ../shared/pretrained/resnet56-cifar10/pretrained-73bd612209); it "
                    "must be of --model on CIFAR-10, its pretraining settings replace --pretrain-*")
    ap.add_argument("--train-subset", type=int, default=None)
    ap.add_argument("--test-subset", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--run-dir", default=None, help="default: runs/<model>-cifar10-study")
    ap.add_argument("--results", default="results")
    ap.add_argument("--no-progress", action="store_true")


def run_config(a, pretrain: pdl.TrainConfig, **settings) -> pipeline.PipelineConfig:
    """The pipeline configuration of ``add_run_args``' options (``a.widths``: one width per layer),
    started from ``--pretrained`` if given (a mismatch exits, naming it)."""
    base = pipeline.PipelineConfig(
        run_dir=a.run_dir or f"runs/{a.model}-cifar10-study", model=a.model, data_root=a.data_root, widths=a.widths,
        train_subset=a.train_subset, test_subset=a.test_subset, device=a.device, progress=not a.no_progress,
        pretrain=pretrain, target=None, **settings)
    if not a.pretrained:
        return base
    try:
        return pipeline.adopt_pretrained(base, a.pretrained)
    except pipeline.PretrainedMismatch as e:
        sys.exit(f"{Path(sys.argv[0]).name}: --pretrained: {e}")


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """The study's settings, resolved from the options once (budgets from the model's table,
    methods, widths); a later step's value is a new config (``dataclasses.replace``)."""
    model: str
    methods: tuple[str, ...]
    budget_macs: int | None
    budget_params: float | None
    arch: str | None
    pretrain_epochs: int
    pretrain_lr: float
    fit_epochs: int
    fit_subset: int
    fit_batch_size: int
    samples: int
    switch_form: str | None
    finetune_epochs: int
    finetune_lr: float
    distill: float
    cpu_bf16: bool
    min_keep: float
    widths: tuple[int, ...] | None
    pretrained: str | None
    train_subset: int | None
    test_subset: int | None
    device: str
    data_root: str | None
    run_dir: str | None
    results: str
    no_progress: bool
    time_budget: float | None
    command: str
    pretrain_only: bool = False
    model_kwargs: dict = dataclasses.field(default_factory=dict)


def parse(argv: list[str] | None) -> StudyConfig:
    ap = argparse.ArgumentParser(description="One CIFAR-10 network's whole study in one command.")
    ap.add_argument("--model", default="vgg16", choices=["vgg16", "resnet56", "wrn28_10"])
    ap.add_argument("--methods", default=None, help=f"from {', '.join(ALL_METHODS)} (default: "
                    f"{', '.join(METHODS)}, and {EVERY_GROUP} on {', '.join(RESIDUAL)})")
    ap.add_argument("--budget-macs", type=int, default=None, help="default: the model's supplement table")
    ap.add_argument("--budget-params", type=float, default=None,
                    help="parameters, or a fraction of the full network's if below 1; 0: no parameter budget")
    ap.add_argument("--arch", default=None, help="also prune to these architectures with the posterior means, "
                    "comma-separated (one count per layer or per stage each; e.g. a baseline's, to compare rankings "
                    "at the same counts; default: the model's table's, if any; none: no architecture run)")
    ap.add_argument("--pretrain-epochs", type=int, default=30)
    ap.add_argument("--pretrain-lr", type=float, default=0.4)
    ap.add_argument("--fit-epochs", type=int, default=3, help="per layer")
    ap.add_argument("--fit-subset", type=int, default=10_000,
                    help="random training images the switches are fitted on (results/archive/lenet5_fit_data.md: on "
                         "LeNet-5, 10,000 images x 3 epochs per layer prune as well as all 60,000 x 3 in a fifth "
                         "of the time; 1 epoch per layer is worse)")
    ap.add_argument("--fit-batch-size", type=int, default=256)
    ap.add_argument("--samples", type=int, default=4, help="mc particles")
    ap.add_argument("--switch-form", default=None, choices=pdl.switch_config.FORMS,
                    help="how a switch scales its channel (default: the library's choice for the network's kind: "
                         "s on ResNets, rKs on VGG-16, see the README)")
    ap.add_argument("--finetune-epochs", type=int, default=30)
    ap.add_argument("--finetune-lr", type=float, default=0.1)
    ap.add_argument("--distill", type=float, default=0.0, help="fine-tune every method with knowledge distillation "
                    "from the full network, this weight on its soft targets (pdl.Distill, T = 4; 0: off)")
    ap.add_argument("--cpu-bf16", action="store_true", help="fine-tune with bf16 autocast on the CPU (faster only "
                    "with AVX-512 BF16 or AMX: results/speed/cpu_bf16*.md; the switch fit and the errors stay fp32)")
    ap.add_argument("--min-keep", type=float, default=MIN_KEEP, help="every method's per-layer floor: at least "
                    "this share of each layer's channels (pdl.counts_for_budget)")
    add_run_args(ap)
    ap.add_argument("--pretrain-only", action="store_true",
                    help="stop after pretraining (and its speed record); a later run with the same settings resumes")
    ap.add_argument("--time-budget", type=float, default=None,
                    help="seconds for the whole study: fewer pretraining and fine-tuning epochs if the requested "
                         "ones would not fit, from this device's measured speed (inference/time_plan.py)")
    a = ap.parse_args(argv)
    table = paper.CIFAR10_TABLES.get(a.model, {})
    resolved = {
        "command": "python " + shlex.join(["benchmarks/cifar10_network.py", *(sys.argv[1:] if argv is None else argv)]),
        "budget_macs": a.budget_macs or table.get("budget_macs"),
        "budget_params": table.get("budget_params") if a.budget_params is None else (a.budget_params or None),
        "arch": None if a.arch == "none" else a.arch or table.get("arch"),
        "methods": tuple(a.methods.split(",") if a.methods else [*METHODS, *([EVERY_GROUP] if a.model in RESIDUAL
                                                                             else [])]),
        "widths": (a.widths,) * len(build_model(a.model).prunable_layers) if a.widths else None}
    if a.pretrained and a.time_budget:
        ap.error("--time-budget plans the pretraining epochs too; with --pretrained give --finetune-epochs instead")
    if resolved["budget_macs"] is None and resolved["budget_params"] is None:
        ap.error(f"give --budget-macs or --budget-params for {a.model} (no supplement budget is built in)")
    if set(resolved["methods"]) - set(ALL_METHODS):
        ap.error(f"--methods: choose from {', '.join(ALL_METHODS)}")
    if not 0 <= a.min_keep <= 1:
        ap.error(f"--min-keep is the share of each layer's channels every allocation keeps, in [0, 1]; got {a.min_keep}")
    cfg = StudyConfig(**{**vars(a), **resolved})
    if cfg.arch:  # refused now, not after pretraining and fitting
        shape = build_model(cfg.model, **({"widths": list(cfg.widths)} if cfg.widths else {}))
        for arch in archs(cfg):
            try:
                pdl.parse_architecture(arch, pdl.site_sizes(shape), getattr(shape, "layer_groups", None))
            except ValueError as e:
                ap.error(f"--arch {arch}: {e} (at --widths {cfg.widths[0] if cfg.widths else 'full'}); give an --arch "
                         "that fits")
    return cfg


def archs(a) -> list[str]:
    """``--arch``'s architectures (none: [])."""
    return a.arch.split(",") if a.arch else []
