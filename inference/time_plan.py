"""Epochs that fit a wall-clock budget, from the measured speed of this device.

A borrowed GPU runs one command for at most a few minutes, and its machine (with the run
folder) is given back soon after, so a study must finish inside one command. Before any
training, :func:`measure_speed` times, on copies and a few batches after a warm-up epoch,

- ``t_train``: seconds per image of a training step of the full network (the recipe's batch,
  bf16 on CUDA);
- ``t_fit``: seconds per image of one layer's switch-fit epoch (``mean``, layer by layer: the
  median over the layers);
- ``t_latency``: seconds of the CPU latency measurements of the full network.

:func:`plan_epochs` then scales the pretraining and fine-tuning epochs by one factor ``s <= 1``
(at least one epoch each) so that the estimate

    N t_train (s P + rho s E M) + N_fit t_fit F sum_fits(L W) + (M + 1) t_latency
        <= budget (1 - reserve) - fixed - spent

holds: ``M`` fine-tuned networks, each at ``rho`` of the full network's step time (pruned
networks are smaller); each fit has ``L`` sites fitted ``F`` epochs each (layer by layer, every
epoch priced at ``t_fit``) and ``W`` particles (``mean``: 1, ``mc``: S); ``reserve`` is kept
for the estimate's error, ``fixed`` for what does not scale with the epochs (40 s: on this
2-core CPU, a full VGG-16's or WRN-28-10's posterior draws, summary, forest plots and netCDF
took 5 to 6 s per fit, three fits, and its ONNX export and check 4 to 5 s; figures and
evaluations add a few), and ``spent`` is the time already gone (start, data, the measurements).
The plan is saved in the run folder and reused, so a rerun on the same device trains the same
networks.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch.nn as nn

import pyro_dirichlet as pdl
from pyro_dirichlet.io import load_json, save_json

RHO = 0.5  # a pruned network's training step, as a fraction of the full network's
RESERVE = 0.1  # of the budget, for the estimate's error
FIXED_SECONDS = 40.0  # posterior draws, forest plots, ONNX export, figures (module docstring)


@dataclass(frozen=True)
class Speed:
    train_s_per_image: float
    fit_s_per_image: float
    latency_s: float  # one network's CPU latency measurements


@dataclass(frozen=True)
class Work:
    """What a study trains: ``n_train`` / ``n_fit`` images; ``fit_passes`` = sum over fits of
    sites x particles x epochs per site; ``finetunes`` networks fine-tuned."""
    n_train: int
    n_fit: int
    pretrain_epochs: int
    finetune_epochs: int
    finetunes: int
    fit_passes: int


def measure_speed(net: nn.Module, train: pdl.ArrayDataset, recipe: pdl.TrainConfig, fit_batch_size: int,
                  sites, cpu_latency) -> Speed:
    """Time ``net``'s training (on a copy, 8 batches, the second epoch), its layer-by-layer
    switch fit (one epoch per layer on the same images, the median layer) and
    ``cpu_latency(net)`` once."""
    data = train.subset(8 * recipe.batch_size)
    history = pdl.train(copy.deepcopy(net), data, dataclasses.replace(recipe, epochs=2), progress=False)
    switched = pdl.SwitchedNetwork(copy.deepcopy(net), sites)
    fit_cfg = pdl.FitConfig(estimator="mean", epochs=1, batch_size=fit_batch_size, mode="layerwise")
    _, fit_history = pdl.fit_switches(switched, data, fit_cfg, progress=False)
    t0 = time.perf_counter()
    cpu_latency(net)
    fit_seconds = statistics.median(h["seconds"] for h in fit_history)
    return Speed(history[-1]["seconds"] / len(data), fit_seconds / len(data), time.perf_counter() - t0)


def estimate_parts(speed: Speed, work: Work, pretrain_epochs: int, finetune_epochs: int) -> dict[str, float]:
    """Estimated seconds of the training, the switch fits and the CPU latency runs."""
    epochs = pretrain_epochs + RHO * finetune_epochs * work.finetunes  # in full-network epochs
    return {"training": work.n_train * speed.train_s_per_image * epochs,
            "fitting": work.n_fit * speed.fit_s_per_image * work.fit_passes,
            "latency": (work.finetunes + 1) * speed.latency_s}


def estimate_seconds(speed: Speed, work: Work, pretrain_epochs: int, finetune_epochs: int) -> float:
    return sum(estimate_parts(speed, work, pretrain_epochs, finetune_epochs).values())


class TimePlanError(ValueError):
    """The budget holds not even one epoch each; ``record`` has the measured speed and the estimates."""

    def __init__(self, message: str, record: dict):
        super().__init__(message)
        self.record = record


def plan_epochs(speed: Speed, work: Work, budget_seconds: float, spent: float = 0.0) -> tuple[int, int]:
    """``(pretrain epochs, fine-tune epochs)``: the requested ones scaled by one factor to fit
    ``budget_seconds (1 - RESERVE) - FIXED_SECONDS - spent``; ``work.pretrain_epochs`` 0 (a
    pretraining already done) stays 0. Raises :class:`TimePlanError` naming the fix if one
    epoch each does not fit."""
    usable = budget_seconds * (1 - RESERVE) - FIXED_SECONDS - spent
    if estimate_seconds(speed, work, work.pretrain_epochs, work.finetune_epochs) <= usable:
        return work.pretrain_epochs, work.finetune_epochs
    fixed = estimate_seconds(speed, work, 0, 0)
    per_unit = estimate_seconds(speed, work, work.pretrain_epochs, work.finetune_epochs) - fixed
    scale = (usable - fixed) / per_unit
    planned = (math.floor(work.pretrain_epochs * scale), math.floor(work.finetune_epochs * scale))
    if planned[1] < 1 or (work.pretrain_epochs and planned[0] < 1):
        parts = estimate_parts(speed, work, 1, 1)
        needed = (sum(parts.values()) + FIXED_SECONDS + spent) / (1 - RESERVE)
        shares = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in parts.items())
        raise TimePlanError(
            f"--time-budget {budget_seconds:.0f} s: one pretraining and one fine-tuning epoch alone need about "
            f"{needed:.0f} s on this device ({shares}, fixed {FIXED_SECONDS:.0f} s, spent {spent:.0f} s); give a "
            "larger budget, fewer --methods, or a smaller --train-subset, --fit-subset, --fit-epochs or --samples",
            {"budget_seconds": budget_seconds, "needed_seconds": needed, "one_epoch_each": parts,
             "spent_seconds": spent, "speed": dataclasses.asdict(speed), "work": dataclasses.asdict(work)})
    return planned


def planned_epochs(folder: Path, key: dict, measure, work: Work, budget_seconds: float, started: float) -> dict:
    """The plan for ``key`` saved in ``folder`` (reused), else measured, planned and saved:
    ``{"pretrain_epochs", "finetune_epochs", "estimate_seconds", "spent_seconds", "speed", ...}``;
    ``started``: the study's start, a ``time.perf_counter()``."""
    path = folder / "time-plan.json"
    key = json.loads(json.dumps(key))  # as saved: tuples become lists
    if path.exists() and load_json(path)["key"] == key:
        return load_json(path)
    speed = measure()
    spent = time.perf_counter() - started
    pretrain_epochs, finetune_epochs = plan_epochs(speed, work, budget_seconds, spent)
    parts = estimate_parts(speed, work, pretrain_epochs, finetune_epochs)
    plan = {"key": key, "pretrain_epochs": pretrain_epochs, "finetune_epochs": finetune_epochs,
            "estimate_seconds": sum(parts.values()) + FIXED_SECONDS, "estimate_parts": parts, "spent_seconds": spent,
            "speed": dataclasses.asdict(speed), "work": dataclasses.asdict(work)}
    save_json(plan, path)
    return plan
