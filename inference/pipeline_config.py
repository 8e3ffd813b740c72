"""The pipeline's settings: :class:`PipelineConfig` (one run folder's steps and their keys,
:mod:`.pipeline`), its pruning :class:`Target`, and :class:`StudySettings` (what the study
harnesses share)."""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

import pyro_dirichlet as pdl
from pyro_dirichlet.io import keyed_folder, keyed_path
from pyro_dirichlet.models import build_model


@functools.lru_cache(maxsize=None)
def _zoo_switch(switch: pdl.SwitchConfig, model: str) -> pdl.SwitchConfig:
    """:func:`pyro_dirichlet.resolve_switch` on the zoo's ``model`` (its kind does not depend on its widths)."""
    return switch if switch.form != pdl.switch_config.AUTO else pdl.resolve_switch(switch, build_model(model))


@dataclass
class Target:
    """How many channels to keep: exactly one of an architecture, a MAC budget, a mass threshold.
    ``per_mac``: a MAC budget removes channels in the order of posterior mean per MAC
    (``K_l E[s_lk]`` / the MACs of one of the layer's channels), else of ``K_l E[s_lk]``."""

    arch: str | None = None
    budget_macs: int | None = None
    mass: float | None = None
    per_mac: bool = pdl.allocation.PER_MAC

    def __post_init__(self):
        if sum(v is not None for v in (self.arch, self.budget_macs, self.mass)) != 1:
            raise ValueError("give exactly one pruning target: --arch A-B-C-D, --budget-macs N or --mass T")

    @property
    def tag(self) -> str:
        if self.arch is not None:
            return f"arch-{self.arch}"
        if self.budget_macs is not None:
            return f"macs-{self.budget_macs}" + ("-per-mac" if self.per_mac else "")
        return f"mass-{self.mass}"

    def counts(self, net: nn.Module, scores: dict[str, torch.Tensor], links: pdl.allocation.Links) -> dict[str, int]:
        """Keep counts for the zoo network ``net`` (``net.zoo_name``) with posterior-mean ``scores``."""
        if self.arch is not None:
            sizes = {name: len(s) for name, s in scores.items()}
            return pdl.parse_architecture(self.arch, sizes, getattr(net, "layer_groups", None), links)
        if self.budget_macs is not None:
            return pdl.counts_for_budget(net, scores, self.budget_macs, net.input_shape, links=links,
                                         per_mac=self.per_mac)
        return pdl.allocation.feasible_counts(pdl.counts_for_mass(scores, self.mass), links)


@dataclass
class PipelineConfig:
    run_dir: str | None = None  # default: runs/<model>-<data set>
    model: str = "lenet5"
    widths: tuple[int, ...] | None = None
    data_root: str | None = None
    download: bool = True
    train_subset: int | None = None
    test_subset: int | None = None
    device: str = "auto"
    switch: pdl.SwitchConfig = field(default_factory=pdl.SwitchConfig)
    holdout: int = 0  # training examples held out of pretraining
    fit_data: str = "train"  # "train" (the pretraining examples) | "holdout"
    pretrain: pdl.TrainConfig = field(default_factory=lambda: pdl.TrainConfig(epochs=12, lr=1e-3))
    fit: pdl.FitConfig = field(default_factory=pdl.FitConfig)
    target: Target | None = field(default_factory=lambda: Target(arch="5-8-45-15"))  # None: no pruning step
    finetune: pdl.TrainConfig = field(default_factory=lambda: pdl.TrainConfig(epochs=20, lr=1e-3))
    progress: bool = True

    def __post_init__(self):
        if self.model not in DATASETS:
            raise ValueError(f"unknown model {self.model!r}; choose one of {sorted(DATASETS)}")
        for flag, n in (("--train-subset", self.train_subset), ("--test-subset", self.test_subset)):
            if n is not None and n < 1:
                raise ValueError(f"{flag} {n}: a subset needs at least one example (give N >= 1, or leave it out "
                                 "for all)")
        if self.fit_data not in FIT_DATA or self.holdout < 0 or (self.fit_data == "holdout") != (self.holdout > 0):
            raise ValueError(f"fit data {self.fit_data!r} with {self.holdout} held-out examples: use --fit-data holdout "
                             "with --holdout N > 0, or --fit-data train with --holdout 0")

    @property
    def root(self) -> Path:
        return Path(self.run_dir or f"runs/{self.model}-{DATASETS[self.model][0]}")

    @property
    def pretrained_settings(self) -> dict:
        return {"model": self.model, "widths": list(self.widths) if self.widths else None,
                "data": {"dataset": DATASETS[self.model][0], "train_subset": self.train_subset,
                         "test_subset": self.test_subset, "holdout": self.holdout},
                "train": asdict(self.pretrain)}

    @property
    def pretrained_path(self) -> Path:
        """:attr:`pretrained_dir` without creating it (to ask whether the pretraining was done)."""
        return keyed_path(self.root, "pretrained", self.pretrained_settings)

    @property
    def pretrained_dir(self) -> Path:
        return keyed_folder(self.root, "pretrained", self.pretrained_settings)

    @property
    def switch_used(self) -> pdl.SwitchConfig:
        """``switch`` with ``"auto"`` resolved for the zoo network (``pyro_dirichlet.form_rule``), as
        its fit uses it: folders and results name the form that was used."""
        return _zoo_switch(self.switch, self.model)

    @property
    def fit_settings(self) -> dict:
        return {**self.switch_used.settings(), "fit_data": self.fit_data, "fit": asdict(self.fit)}

    @property
    def fit_dir(self) -> Path:
        return keyed_folder(self.pretrained_dir, f"fit-{self.fit.estimator}-{self.fit.mode}", self.fit_settings)

    @property
    def prune_dir(self) -> Path:
        if self.target is None:
            raise ValueError("give one pruning target: --arch A-B-C-D, --budget-macs N or --mass T")
        return self.fit_dir / f"prune-{self.target.tag}"

    @property
    def finetune_dir(self) -> Path:
        return keyed_folder(self.prune_dir, "finetuned", asdict(self.finetune))


@dataclass
class StudySettings:
    """What the study harnesses (compare, ablate) share: data, device and pretraining."""

    device: str = "auto"
    data_root: str | None = None
    train_subset: int | None = None
    test_subset: int | None = None
    progress: bool = True
    pretrain: pdl.TrainConfig = field(default_factory=lambda: pdl.TrainConfig(epochs=12, lr=1e-3))

    def pipeline(self, run_dir: str, **kwargs) -> PipelineConfig:
        """The pipeline configuration of the study's pretrained network."""
        return PipelineConfig(run_dir=run_dir, device=self.device, data_root=self.data_root,
                              train_subset=self.train_subset, test_subset=self.test_subset, pretrain=self.pretrain,
                              progress=self.progress, **kwargs)


FIT_DATA = ("train", "holdout")
# model -> (data set name, loader)
DATASETS = {"lenet5": ("mnist", pdl.load_mnist), "lenet5_3fc": ("mnist", pdl.load_mnist), "mlp": ("mnist", pdl.load_mnist),
            "vgg16": ("cifar10", pdl.load_cifar10), "resnet56": ("cifar10", pdl.load_cifar10),
            "wrn28_10": ("cifar10", pdl.load_cifar10), "plain_cnn": ("cifar10", pdl.load_cifar10)}
