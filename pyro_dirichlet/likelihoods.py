"""The observation model of a network's outputs, one for every entry point: the switch fit's
likelihood, the data criteria's loss (``taylor``, ``fisher``, ``tp-taylor``, ``tp-hessian``,
``group-lasso``) and fine-tuning (:func:`nll` as ``train``'s loss). (The ``likelihood`` allocations
still read the categorical log-likelihood.)

A likelihood is a callable ``outputs -> torch Distribution`` whose batch shape ends in the batch,
``B``: outputs ``(..., B, *out)`` (leading particle dims allowed) and targets ``(B, *target)``
with the distribution's event shape ``target``. Built in, by name:

- ``"categorical"``: logits ``(B, C)``, class labels ``(B,)`` int64 (the default);
- ``"bernoulli"``: one logit ``(B, 1)`` with labels 0/1 ``(B,)``, or dense logits ``(B, *out)``
  with 0/1 targets of the same shape (e.g. per-frame multi-label ``(B, T, C)``: binary
  cross-entropy summed over the frames and labels of an example);
- :class:`Gaussian` ``(scale)``: regression, ``y ~ N(outputs, scale^2)`` elementwise.

Any other callable is a user's own, e.g. ``lambda out: dist.Poisson(out.exp()).to_event(1)``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import pyro.distributions as dist
import torch

__all__ = ["LIKELIHOODS", "Gaussian", "resolve", "observed", "log_prob", "nll", "likelihood_name"]

Likelihood = Callable[[torch.Tensor], dist.Distribution]


def _one_per_row(outputs: torch.Tensor, y: torch.Tensor | None) -> bool:
    """One output a row (``(..., B, 1)``) read against one target a row (``(B,)``, or none given)."""
    return outputs.shape[-1] == 1 and (y is None or y.dim() == 1)


def categorical(outputs: torch.Tensor, y: torch.Tensor | None = None) -> dist.Distribution:
    return dist.Categorical(logits=outputs)


def bernoulli(outputs: torch.Tensor, y: torch.Tensor | None = None) -> dist.Distribution:
    """One logit a row (labels ``(B,)``) or dense logits (targets of the outputs' shape)."""
    if _one_per_row(outputs, y):
        return dist.Bernoulli(logits=outputs.squeeze(-1))
    return dist.Bernoulli(logits=outputs).to_event(outputs.dim() - 1)


@dataclass(frozen=True)
class Gaussian:
    """``y ~ N(outputs, scale^2)`` elementwise over every output dim after the batch (one output a
    row with targets ``(B,)``: the output's last dim dropped)."""
    scale: float = 1.0
    takes_targets: ClassVar[bool] = True

    def __call__(self, outputs: torch.Tensor, y: torch.Tensor | None = None) -> dist.Distribution:
        if _one_per_row(outputs, y):
            outputs = outputs.squeeze(-1)
        return dist.Normal(outputs, self.scale).to_event(outputs.dim() - 1)


categorical.takes_targets = bernoulli.takes_targets = True  # built-ins read the targets' shape; a user's own does not
LIKELIHOODS = {"categorical": categorical, "bernoulli": bernoulli}


def likelihood_name(likelihood) -> str:
    """What a stored key calls ``likelihood``: its registered name or its ``repr``."""
    return likelihood if isinstance(likelihood, str) else repr(likelihood)


def resolve(likelihood: str | Likelihood) -> Likelihood:
    """The callable of a registered name (:data:`LIKELIHOODS`) or of a user's own likelihood."""
    if isinstance(likelihood, str):
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {sorted(LIKELIHOODS)} or a callable outputs -> "
                             f"distribution (e.g. pyro_dirichlet.Gaussian(0.1)), got {likelihood!r}")
        return LIKELIHOODS[likelihood]
    if not callable(likelihood):
        raise TypeError(f"likelihood must be a name or a callable outputs -> distribution, got {likelihood!r}")
    return likelihood


def observed(likelihood, outputs: torch.Tensor, y: torch.Tensor | None, batch: int
             ) -> tuple[dist.Distribution, torch.Tensor | None]:
    """``(distribution, targets as it observes them)`` of ``outputs`` ``(..., B, *out)``; refuses,
    naming the shapes and the fix, a distribution whose batch shape does not end in ``B`` or whose
    event shape is not the targets'."""
    name = likelihood_name(likelihood)
    try:
        f = resolve(likelihood)
        d = f(outputs, y) if getattr(f, "takes_targets", False) else f(outputs)
    except (ValueError, RuntimeError) as e:
        raise ValueError(f"the likelihood {name} does not take the network's outputs {tuple(outputs.shape)}: "
                         f"{e}. {_expects()}") from e
    target = None if y is None else tuple(y.shape[1:])
    if d.batch_shape[-1:] != (batch,) or (target is not None and tuple(d.event_shape) != target):
        raise ValueError(
            f"the likelihood {name} turns the network's outputs {tuple(outputs.shape)} into a distribution of batch "
            f"shape {tuple(d.batch_shape)} and event shape {tuple(d.event_shape)}, but the batch has {batch} examples"
            f"{'' if target is None else f' with targets of shape {target}'}. {_expects()}")
    if y is not None and not y.is_floating_point() and isinstance(getattr(d, "base_dist", d), dist.Bernoulli):
        y = y.to(outputs.dtype)
    return d, y


def _expects() -> str:
    return ("Built in: 'categorical' (logits (B, C), labels (B,)); 'bernoulli' (one logit (B, 1) with 0/1 labels "
            "(B,), or logits (B, ...) with 0/1 targets of the same shape); Gaussian(scale) (outputs and targets of "
            "one shape). Pass likelihood= a callable outputs -> distribution with batch shape (B,), e.g. "
            "lambda out: pyro.distributions.Bernoulli(logits=out).to_event(2) for per-frame targets (B, T, C), to "
            "SwitchedNetwork(..., likelihood=) and CRITERIA[name](..., likelihood=); train with "
            "loss=pyro_dirichlet.nll(likelihood)")


def log_prob(likelihood, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``(B,)``: ``log p(y_n | outputs_n)`` of each example (outputs ``(B, ...)``, in float32)."""
    d, y = observed(likelihood, outputs.float(), y, y.shape[0])
    return d.log_prob(y)


def nll(likelihood: str | Likelihood = "categorical") -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``loss(outputs (B, ...), y (B, ...))``: the mean over the batch of ``-log p(y_n | outputs_n)``
    (``"categorical"``: the mean cross-entropy), a loss for :func:`.training.train`."""
    def loss(outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return -log_prob(likelihood, outputs, y).mean()
    loss.likelihood = likelihood
    return loss
