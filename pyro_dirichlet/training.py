"""Plain-torch training, fine-tuning and evaluation.

Adam or SGD (momentum, Nesterov), cosine, one-cycle or constant learning rate (per step),
cross-entropy with optional label smoothing, a seed that fixes initialisation-independent
randomness (shuffling, augmentation), bf16 autocast on CUDA. Fast-path options:
``augment`` (random crop with zero padding 4 and horizontal flip, done on the batch's
device), ``channels_last`` memory format, and ``compile`` (``torch.compile``). Under ``torchrun`` the network is wrapped in
``DistributedDataParallel`` and each rank trains on its shard (:mod:`.distributed`). With
``checkpoint`` set, the state is written atomically after every epoch (by rank 0) and an
interrupted run resumes from it.

One-cycle: the factor rises linearly from 0.1 to 1 over the first 15% of the steps, then
follows a cosine to 0.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import distributed, epochs
from .likelihoods import likelihood_name, observed
from .data import ArrayDataset, check_labels
from .frozen import frozen


SCHEDULES = ("cosine", "onecycle", "constant")


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "adam"  # "adam" | "sgd"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: str = "cosine"  # "cosine" | "onecycle" | "constant"
    label_smoothing: float = 0.0
    augment: bool = False  # random crop (pad 4) + horizontal flip
    channels_last: bool = False
    compile: bool = False
    seed: int = 0

    def __post_init__(self):
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.epochs < 0 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError(f"need epochs >= 0, batch_size >= 1 and lr > 0, got {self}")


@dataclass(frozen=True)
class Distill:
    """Knowledge distillation from ``teacher`` (run frozen, in eval mode): each batch's loss is
    ``(1 - weight) CE(z, y) + weight T^2 KL(softmax(z_t / T) || softmax(z / T))`` with z the
    student's logits, z_t the teacher's and T = ``temperature`` (Hinton et al., 2015)."""

    teacher: nn.Module
    weight: float = 0.5
    temperature: float = 4.0

    def __post_init__(self):
        if not (0 < self.weight <= 1 and self.temperature > 0):
            raise ValueError(f"distillation needs 0 < weight <= 1 and temperature > 0, got {self.weight!r}, "
                             f"{self.temperature!r}")

    def settings(self) -> dict:
        """What a checkpoint and a run folder are keyed by (the teacher is the run's own network)."""
        return {"distill_weight": self.weight, "distill_temperature": self.temperature}

    def loss(self, logits: torch.Tensor, x: torch.Tensor, hard: torch.Tensor) -> torch.Tensor:
        """The distilled loss of a batch: ``hard`` is its cross-entropy, ``logits`` ``(B, classes)``."""
        with torch.no_grad():
            target = self.teacher(x)
        T = self.temperature
        soft = F.kl_div(F.log_softmax(logits.float() / T, -1), F.log_softmax(target.float() / T, -1), log_target=True,
                        reduction="batchmean")
        return (1 - self.weight) * hard + self.weight * T * T * soft


def autocast(device: torch.device, cpu_bf16: bool = False):
    """bf16 autocast on CUDA, and on the CPU where ``cpu_bf16`` asks for it (faster only on a CPU
    with AVX-512 BF16 or AMX: ``results/speed/cpu_bf16*.md``); fp32 otherwise."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_bf16 and device.type == "cpu")


def lr_factor(schedule: str, step: int, total: int) -> float:
    """Learning-rate multiplier at ``step`` of ``total`` (module docstring)."""
    t = min(step, total) / total
    if schedule == "constant":
        return 1.0
    if schedule == "onecycle":
        if t < 0.15:
            return 0.1 + 0.9 * t / 0.15
        t = (t - 0.15) / 0.85
    return 0.5 * (1 + math.cos(math.pi * t))


def crop_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random crop of the zero-padded (4 pixels) batch and horizontal flip with probability 1/2.

    x: ``(B, C, H, W)`` on any device; ``generator`` on the same device. Same shape out."""
    B, C, H, W = x.shape
    padded = F.pad(x, (4, 4, 4, 4))
    dy, dx = (torch.randint(0, 9, (B,), device=x.device, generator=generator) for _ in range(2))
    rows = (dy[:, None] + torch.arange(H, device=x.device))[:, None, :, None].expand(B, C, H, W + 8)
    cols = (dx[:, None] + torch.arange(W, device=x.device))[:, None, None, :].expand(B, C, H, W)
    cropped = padded.gather(2, rows).gather(3, cols)
    flip = torch.rand(B, device=x.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], cropped.flip(3), cropped)


def _optimizer(net: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in net.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay)


def speed_record(history: list[dict], images: int) -> dict:
    """Training speed from :func:`train`'s history over ``images`` per epoch: ``epoch_seconds``
    is the median over the epochs after the first (which holds the warm-up and compilation)."""
    seconds = [h["seconds"] for h in history]
    epoch_s = statistics.median(seconds[1:] if len(seconds) > 1 else seconds)
    return {"epochs": len(seconds), "epoch_seconds": epoch_s, "total_train_seconds": sum(seconds),
            "images_per_second": images / epoch_s}


def train(
    net: nn.Module,
    data: ArrayDataset,
    cfg: TrainConfig,
    checkpoint: str | Path | None = None,
    progress: bool = True,
    regularizer: Callable[[nn.Module], torch.Tensor] | None = None,
    distill: Distill | None = None,
    cpu_bf16: bool = False,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> list[dict]:
    """Train ``net`` in place on ``data`` (already on the net's device); returns per-epoch history.
    ``loss(outputs (B, ...), y (B, ...))``: a scalar per batch (default: the cross-entropy with
    ``cfg.label_smoothing``; :func:`.likelihoods.nll` makes one of any likelihood, e.g. per-frame
    BCE). ``regularizer(net)`` (a scalar) is added to every batch's loss; ``distill``: learn from a
    teacher's logits as well (:class:`Distill`); ``cpu_bf16``: bf16 autocast on the CPU too
    (:func:`autocast`; CUDA always uses it)."""
    device = next(net.parameters()).device
    check_data(net, data, "categorical" if loss is None else getattr(loss, "likelihood", None))
    net.requires_grad_(True)
    opt = _optimizer(net, cfg)
    part = distributed.shard()  # (rank, world) under torchrun
    steps_per_epoch = math.ceil(distributed.shard_length(len(data)) / cfg.batch_size)
    total = max(1, cfg.epochs * steps_per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(cfg.schedule, step, total))
    history: list[dict] = []
    start_epoch = 0
    config = asdict(cfg) | (distill.settings() if distill else {}) | ({"cpu_bf16": True} if cpu_bf16 else {}) | (
        {"loss": loss_name(loss)} if loss is not None else {})
    state = epochs.resume(checkpoint, "config", config, "training", device)
    if state is not None:
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        start_epoch, history = state["epoch"], state["history"]
    if cfg.channels_last:
        net.to(memory_format=torch.channels_last)
    forward = net
    if part:
        forward = nn.parallel.DistributedDataParallel(net, device_ids=[device] if device.type == "cuda" else None)
    if cfg.compile:
        forward = torch.compile(forward)
    for epoch in range(start_epoch, cfg.epochs):
        net.train()
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        augment_gen = torch.Generator(device=device).manual_seed(cfg.seed * 100_003 + epoch)
        t0, loss_sum, seen = time.perf_counter(), 0.0, 0
        bar = tqdm(data.batches(cfg.batch_size, shuffle=True, generator=gen, shard=part), total=steps_per_epoch,
                   desc=f"train {epoch + 1}/{cfg.epochs}", disable=not (progress and distributed.is_main()), leave=False)
        for x, y, _ in bar:
            if cfg.augment:
                x = crop_flip(x, augment_gen)
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, cpu_bf16), frozen(distill.teacher) if distill else contextlib.nullcontext():
                logits = forward(x)
                value = (F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing) if loss is None
                         else loss(logits, y))
                if distill is not None:
                    value = distill.loss(logits, x, value)
                if regularizer is not None:
                    value = value + regularizer(net)
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            sched.step()
            loss_sum += value.item() * len(y)
            seen += len(y)
        entry = {"epoch": epoch + 1, "loss": distributed.mean_over_ranks(loss_sum / max(seen, 1), device),
                 "seconds": time.perf_counter() - t0}
        epochs.end_epoch(history, entry, "training loss", cfg.lr, f"epoch {epoch + 1}/{cfg.epochs}", progress,
                         checkpoint, {"config": config, "net": net.state_dict(), "opt": opt.state_dict(),
                                      "sched": sched.state_dict(), "epoch": epoch + 1, "history": [*history, entry]})
    net.eval()
    return history


def loss_name(loss: Callable) -> str:
    """What a checkpoint's key calls a training loss: its likelihood (:func:`.likelihoods.nll`), or its
    qualified name with a hash of its code (two lambdas differ; a closure's captured values do not
    count: give distinct losses distinct code or names)."""
    if hasattr(loss, "likelihood"):
        return f"nll({likelihood_name(loss.likelihood)})"
    code = getattr(loss, "__code__", None) or getattr(type(loss).__call__, "__code__", None)
    digest = hashlib.sha256(code.co_code + repr(code.co_consts).encode()).hexdigest()[:10] if code else repr(loss)
    return f"{getattr(loss, '__module__', '')}.{getattr(loss, '__qualname__', type(loss).__qualname__)}-{digest}"


def check_data(net: nn.Module, data: ArrayDataset, likelihood="categorical") -> None:
    """Refuse an empty data set, class labels that ``net``'s outputs cannot predict
    (:func:`.data.check_labels`) or targets of another shape than the likelihood's
    (:func:`.likelihoods.observed`), on the first example (``likelihood=None``: a loss of the
    user's own, only the data set's size is checked)."""
    if len(data) == 0:
        check_labels(data, 1)
    if likelihood is None:
        return
    first = torch.zeros(1, dtype=torch.long, device=data.device)
    with frozen(net), torch.no_grad():
        outputs = net(data.inputs(first)).float()
    if likelihood in ("categorical", "bernoulli") and data.labels.dim() == 1:
        check_labels(data, outputs.shape[-1])
    observed(likelihood, outputs, data.labels[first], 1)


def error_percent(outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``(B,)``: 100 where the top class is not the label, else 0 (``evaluate``'s default metric)."""
    return 100.0 * (outputs.argmax(-1) != y).float()


@torch.no_grad()
def evaluate(net: nn.Module, data: ArrayDataset, batch_size: int = 1000,
             metric: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = error_percent) -> float:
    """The mean over ``data`` of ``metric(outputs (B, ...), y (B, ...))``, one value an example
    ``(B,)`` (default: the test error in percent), of ``net`` run in eval mode, then left as found."""
    if len(data) == 0:
        check_labels(data, 1)
    device = next(net.parameters()).device
    total = 0.0
    with frozen(net):
        for x, y, _ in data.batches(batch_size):
            with autocast(device):
                outputs = net(x)
            values = metric(outputs.float(), y)
            if values.shape != (len(y),):
                raise ValueError(f"metric must give one value an example, shape ({len(y)},); got {tuple(values.shape)} "
                                 "(e.g. average a per-frame metric over each example's frames)")
            total += values.sum().item()
    return total / len(data)
