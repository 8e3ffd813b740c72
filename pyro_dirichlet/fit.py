"""Fitting the switch posteriors with Pyro's SVI.

ELBO (per data set, minibatch likelihood scaled by N/B by the data plate)::

    L(phi) = sum_i E_q[log p(y_i | x_i, s)] - beta * sum_l KL(Dir(phi_l) || Dir(alpha0 1))

The estimator (``"mc"`` with S particles, or ``"mean"``) is the ELBO's:
:func:`.estimators.switch_elbo`. The model is a :class:`.SwitchedNetwork` or any Pyro model
with Dirichlet switch sites (:mod:`.user_model`); both are fitted by the same loop.

``beta`` rises linearly to ``kl_weight`` (default 1, the ELBO) over ``anneal_epochs`` epochs
(step t of T: ``kl_weight * (t+1)/T``; Pyro needs scale > 0), then stays there;
``anneal_epochs=0`` disables annealing. A ``kl_weight`` below 1 tempers the prior (not an
ELBO any more).
``mode="joint"`` fits all layers at once; ``"layerwise"`` fits one layer at a time, in
order, with the other layers' switches absent (the trained network's function). With
``checkpoint`` set, the state is written atomically after every epoch (by rank 0 under
``torchrun``, where the ranks average their gradients: :mod:`.distributed`), and a fit that
finds a checkpoint of the same configuration resumes from it. Every epoch seeds its own shuffling
and sampling from ``(seed, stage, epoch)``, so a resumed fit equals an uninterrupted one.
"""
from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import pyro
import torch
from pyro import poutine
from pyro.infer import SVI
from tqdm.auto import tqdm

from . import distributed, epochs
from .data import ArrayDataset, check_labels
from .estimators import ESTIMATORS, switch_elbo
from .frozen import hooks
from .switch_config import SHARE_FORMS
from .switches import SwitchedNetwork, SwitchGuide
from .training import check_data
from .user_model import UserModel

MODES = ("joint", "layerwise")


@dataclass
class FitConfig:
    estimator: str = "mean"
    num_samples: int = 16  # S, Monte-Carlo particles per step ("mc" only)
    mode: str = "layerwise"  # the ablation's choice: joint fits are worse with the "s" form
    epochs: int = 3  # per stage (per layer in layerwise mode)
    batch_size: int = 100
    lr: float = 0.05
    anneal_epochs: float = 1.0
    kl_weight: float = 1.0
    init_concentration: float = 10.0
    seed: int = 0
    min_steps: int = 30  # optimiser steps per stage at least: a smaller data set gets smaller batches (plan)

    def __post_init__(self):
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {self.estimator!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if (self.num_samples < 1 or self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.anneal_epochs < 0
                or self.kl_weight <= 0 or self.min_steps < 1):
            raise ValueError(f"need num_samples, epochs, batch_size, min_steps >= 1, lr > 0, anneal_epochs >= 0, "
                             f"kl_weight > 0; got {self}")

    def plan(self, num_data: int) -> dict:
        """``{"batch_size", "steps_per_epoch", "steps_per_stage"}`` of a fit on ``num_data`` examples (per
        rank under ``torchrun``): ``batch_size``, lowered where ``epochs`` epochs of it would take fewer
        than ``min_steps`` optimiser steps a stage (a stage: one site in layerwise mode), to
        ``floor(N * epochs / min_steps)`` and at least 1. 50,000 images keep batches of 100 (500 steps
        an epoch); 36 sequences get batches of 3 (12 steps an epoch, 36 a stage)."""
        batch = self.batch_size
        if math.ceil(num_data / batch) * self.epochs < self.min_steps:
            batch = max(1, min(batch, num_data * self.epochs // self.min_steps))
        steps = math.ceil(num_data / batch)
        return {"batch_size": batch, "steps_per_epoch": steps, "steps_per_stage": steps * self.epochs}


def epoch_seed(seed: int, stage: int, epoch: int) -> int:
    """The seed of one epoch's sampling; its shuffling generator is seeded with this + 1."""
    return (seed * 1_000_003 + stage) * 1_000_003 + epoch


def fit_switches(
    model: SwitchedNetwork | Callable,
    data: ArrayDataset,
    cfg: FitConfig,
    checkpoint: str | Path | None = None,
    progress: bool = True,
) -> tuple[SwitchGuide, list[dict]]:
    """Fit ``q(s) = prod_l Dir(phi_l)`` for the switches of ``model`` on ``data``.

    ``model``: a :class:`.SwitchedNetwork`, or a Pyro model of your own called as
    ``model(x, y, idx=, num_data=)`` per minibatch (:mod:`.user_model`: its switch sites are
    found from a trace). The steps it takes are ``cfg.plan(len(data))`` (a small data set gets
    smaller batches; a warning names the fix when even batches of one give fewer than
    ``cfg.min_steps`` steps a stage). Returns the fitted guide and a history of ``{"stage",
    "epoch", "loss", "seconds"}`` (and ``"temperature"`` when the model fits one) with ``loss`` the mean negative
    ELBO per step. Clears Pyro's global parameter store first.
    """
    device = data.device
    if isinstance(model, SwitchedNetwork):
        check_data(model.net, data, model.likelihood)
        switch = model.switch
        switched, about = model, {"alpha0": switch.alpha0, "form": [switch.form, switch.steepness],
                                  "temperature": switch.temperature,
                                  **({"share": switch.share} if switch.form in SHARE_FORMS else {})}
    else:
        if len(data) == 0:
            check_labels(data, 1)
        x, y, _ = next(iter(data.batches(min(2, len(data)))))
        switched = UserModel(model, x, y, len(data))
        about = {"model": switched.name, "sizes": switched.sizes}
    guide = SwitchGuide(switched.sizes, cfg.init_concentration, switched.temperature).to(device)
    stages = [switched.sites] if cfg.mode == "joint" else [[name] for name in switched.sites]
    identity = {"config": asdict(cfg), "layers": switched.sites, "num_data": len(data), **about}  # stored key
    pyro.clear_param_store()
    optim = pyro.optim.Adam({"lr": cfg.lr})
    # the model's own parameters (a PyroModule's weights live in Pyro's parameter store) are hidden
    # from SVI, so the fit optimises the switch posteriors and nothing else
    frozen_model = poutine.block(switched.model, hide_types=["param"])
    svi = SVI(frozen_model, guide, optim, loss=switch_elbo(cfg.estimator, cfg.num_samples))
    history: list[dict] = []
    done = (0, 0)  # (stage, epochs completed in it)
    state = epochs.resume(checkpoint, "identity", identity, "switch", device)
    if state is not None:
        guide.load_state_dict(state["guide"])
        optim.set_state(state["optim"])
        history, done = state["history"], tuple(state["done"])
    part = distributed.shard()  # (rank, world) under torchrun: this rank's share of each epoch
    plan = cfg.plan(distributed.shard_length(len(data)))
    batch_size, steps_per_epoch = plan["batch_size"], plan["steps_per_epoch"]
    if plan["steps_per_stage"] < cfg.min_steps:
        need = math.ceil(cfg.min_steps / steps_per_epoch)
        warnings.warn(f"the fit takes only {plan['steps_per_stage']} optimiser step(s) a stage ({len(data)} examples, "
                      f"batches of {batch_size}, {cfg.epochs} epoch(s)), fewer than min_steps={cfg.min_steps}: the "
                      f"posterior will hardly move from its start. Give FitConfig(epochs={need}) or more data",
                      stacklevel=2)
    anneal_steps = cfg.anneal_epochs * steps_per_epoch
    averaging = [p.register_hook(distributed.average_gradients_hook) for p in guide.parameters()] if part else []
    with hooks(averaging):
        for stage, sites in enumerate(stages):
            guide.train_only(sites)
            for epoch in range(cfg.epochs):
                if (stage, epoch) < done:
                    continue
                seed = epoch_seed(cfg.seed, stage, epoch)
                torch.manual_seed(seed)
                gen = torch.Generator().manual_seed(seed + 1)
                t0, loss_sum, steps = time.perf_counter(), 0.0, 0
                desc = f"fit {cfg.estimator} {'+'.join(sites) if len(stages) > 1 else 'joint'} {epoch + 1}/{cfg.epochs}"
                bar = tqdm(data.batches(batch_size, shuffle=True, generator=gen, shard=part), total=steps_per_epoch,
                           desc=desc, disable=not (progress and distributed.is_main()), leave=False)
                for x, y, idx in bar:
                    step = epoch * steps_per_epoch + steps
                    beta = cfg.kl_weight * (min(1.0, (step + 1) / anneal_steps) if anneal_steps > 0 else 1.0)
                    loss_sum += svi.step(x, y, idx=idx, num_data=len(data), sites=sites, beta=beta)
                    steps += 1
                entry = {"stage": stage, "epoch": epoch + 1,
                         "loss": distributed.mean_over_ranks(loss_sum / steps, device),
                         "seconds": time.perf_counter() - t0}
                if guide.log_temperature is not None:
                    entry["temperature"] = guide.log_temperature.exp().item()
                epochs.end_epoch(history, entry, "negative ELBO", cfg.lr, desc, progress, checkpoint,
                                 {"identity": identity, "guide": guide.state_dict(), "optim": optim.get_state(),
                                  "history": [*history, entry], "done": (stage, epoch + 1)})
    guide.train_only([])
    return guide, history
