"""The switch's operations: the factor a switch value gives each channel, scaling a layer's
output (or a Linear layer's weight, per particle) by it, and the Pyro primitive
:func:`dirichlet_switch` with its two messengers. Shapes and particles: :mod:`.switches`."""
from __future__ import annotations

import math
from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
import torch.nn as nn
from pyro.poutine.messenger import Messenger
from pyro.poutine.runtime import effectful

from .switch_config import AUTO, FORMS, SwitchConfig

__all__ = ["switch_factor", "scale_channels", "scaled_linear", "dirichlet_switch", "RecordSwitches", "Unswitched"]

BN_EPS = 1e-5
TEMPERATURE_SITE = "log_temperature"
DEFAULT = SwitchConfig()


def switch_factor(s: torch.Tensor, form: str = "s", steepness: float = DEFAULT.steepness,
                  share: float = DEFAULT.share) -> torch.Tensor:
    """Per-channel multiplier ``(..., K)`` of switch values ``s`` ``(..., K)``.

    ``"Ks"``: ``K s_k`` (the paper's; 1 under the uniform switch); ``"s"``: ``s_k`` (the
    authors' code); ``"gate"``: ``g(K s_k)`` with the saturating ``g(u) = tanh(c u) / tanh(c)``,
    c = ``steepness``: 1 under the uniform switch, never above ``1 / tanh(c)``, so a switch can
    shrink a channel but hardly amplify one; ``"norm"``: ``sqrt(K) s_k / ||s||_2``, 1 under the
    uniform switch, and the squared factors always sum to K, so the layer's output norm is kept
    (for channels of equal norm) while the switch moves it between channels; ``"rKs"``: ``r K s_k``
    with r = ``share`` the share of channels the pruned site keeps, so the factors sum to the
    kept count rK, as after pruning (``s`` is r = 1/K, ``Ks`` r = 1); ``"cap"``: ``min(1, r K s_k)``,
    r under the uniform switch, never above the trained scale 1, summing to at most rK: a switch
    uniform over rK channels is exactly the network pruned to those channels. (``"bn"`` is not a
    per-channel factor: see :func:`scale_channels`.)
    """
    if form == "Ks":
        return s.shape[-1] * s
    if form == "rKs":
        return share * s.shape[-1] * s
    if form == "cap":
        return (share * s.shape[-1] * s).clamp(max=1.0)
    if form == "s":
        return s
    if form == "gate":
        return torch.tanh(steepness * s.shape[-1] * s) / math.tanh(steepness)
    if form == "norm":
        return math.sqrt(s.shape[-1]) * s / s.norm(dim=-1, keepdim=True)
    raise ValueError(f"switch form must be one of {FORMS}, got {form!r}")


def scale_channels(x: torch.Tensor, s: torch.Tensor, data_batch: int | None = None, form: str = "s",
                   steepness: float = DEFAULT.steepness, share: float = DEFAULT.share, dim: int = 1) -> torch.Tensor:
    """Multiply channel k of ``x`` by ``switch_factor(s, form, steepness, share)_k`` for each particle of ``s``.

    ``form="bn"`` is the authors' set-up: ``s_k h`` followed by BatchNorm in training mode (per
    particle, statistics over the batch and positions), re-standardised to ``h``'s own batch
    statistics so that the uniform switch keeps the function: ``(s h - mu_sh) / sqrt(var_sh +
    eps) * sqrt(var_h + eps) + mu_h``. The scale of s cancels except against eps, so the
    switch acts through the saturating ``s / sqrt(s^2 + eps / var_h)``.

    x: ``(B, K, *rest)`` or already folded ``(P * B, K, *rest)``, the channels at ``dim`` (1:
    conv feature maps; -1: a Linear layer's features after any token dims, ``(B, N, K)``; -2:
    heads, ``(B, N, K, w)``); s: ``(..., K)`` with P particles, or one value ``(K,)`` for every
    particle of a folded x; data_batch: B (defaults to ``x.shape[0]``). Returns x's shape with
    the batch ``P * B``, particle-major.
    """
    K = s.shape[-1]
    if x.dim() < 2 or x.shape[dim] != K:
        raise ValueError(f"switch of size {K} does not match channel dimension {dim} of a tensor of shape "
                         f"{tuple(x.shape)}")
    if dim % x.dim() != 1:
        return scale_channels(x.movedim(dim, 1), s, data_batch, form, steepness, share).movedim(1, dim)
    s = s.reshape(-1, K)
    P = s.shape[0]
    B = x.shape[0] if data_batch is None else data_batch
    if x.shape[0] == B:
        folded = x.unsqueeze(0)
    elif x.shape[0] % B == 0 and P in (1, x.shape[0] // B):  # one switch value scales every particle alike
        folded = x.reshape(-1, B, *x.shape[1:])
    else:
        raise ValueError(f"batch {x.shape[0]} is neither the data batch {B} nor {P} particles x {B}")
    shape = (P, 1, K, *([1] * (x.dim() - 2)))
    if form == "bn":
        scaled = folded * s.to(x.dtype).reshape(shape)
        dims = [1, *range(3, folded.dim())]
        var_h, mean_h = torch.var_mean(folded, dims, correction=0, keepdim=True)
        var_s, mean_s = torch.var_mean(scaled, dims, correction=0, keepdim=True)
        out = (scaled - mean_s) * torch.sqrt((var_h + BN_EPS) / (var_s + BN_EPS)) + mean_h
    else:
        out = folded * switch_factor(s, form, steepness, share).to(x.dtype).reshape(shape)
    return out.reshape(-1, *x.shape[1:])


def scaled_linear(linear: nn.Linear, u: torch.Tensor, s: torch.Tensor, data_batch: int, form: str = "s",
                  steepness: float = DEFAULT.steepness, share: float = DEFAULT.share) -> torch.Tensor:
    """``linear(scale_channels(u, s, B, form, steepness, share))`` computed with the weight scaled per particle.

    ``W_p = W diag(switch_factor(s_p))`` is ``(P, J, K)``, smaller than the ``(P, B, K)`` scaled
    activations when J < B. u: ``(B, K)`` or folded ``(P * B, K)``; s: ``(..., K)`` with P
    particles. Returns ``(P * B, J)``, particle-major.
    """
    K = s.shape[-1]
    s = s.reshape(-1, K)
    P, B = s.shape[0], data_batch
    w = (linear.weight.unsqueeze(0) * switch_factor(s, form, steepness, share).unsqueeze(1)).to(u.dtype)  # (P, J, K)
    if u.shape[0] == B:
        out = (u @ w.reshape(-1, K).T).reshape(B, P, -1).transpose(0, 1)  # (P, B, J)
    else:
        out = torch.bmm(u.reshape(P, B, K), w.transpose(1, 2))
    if linear.bias is not None:
        out = out + linear.bias.to(out.dtype)
    return out.reshape(P * B, -1)


@effectful(type="switch")
def _switch(site: str, x: torch.Tensor, s: torch.Tensor, data_batch: int | None, form: str, steepness: float,
            share: float, dim: int):
    """The scaling step of :func:`dirichlet_switch`, an effect (message type ``"switch"``) that
    :class:`RecordSwitches` and :class:`Unswitched` handle."""
    return scale_channels(x, s, data_batch, form, steepness, share, dim)


class RecordSwitches(Messenger):
    """Within the block, each :func:`dirichlet_switch` call appends ``(site, x)`` to ``self.calls``."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[str, torch.Tensor]] = []

    def _pyro_switch(self, msg):
        self.calls.append(msg["args"][:2])


class Unswitched(Messenger):
    """The named :func:`dirichlet_switch` sites return their input unscaled (the trained network's
    function, whatever the form), as :class:`SwitchedNetwork` leaves a site out."""

    def __init__(self, sites: Sequence[str]):
        super().__init__()
        self.sites = set(sites)

    def _pyro_switch(self, msg):
        if msg["args"][0] in self.sites:
            msg["value"], msg["done"] = msg["args"][1], True


def dirichlet_switch(name: str, x: torch.Tensor, switch: SwitchConfig = DEFAULT,
                     data_batch: int | None = None, dim: int = 1) -> torch.Tensor:
    """Pyro primitive for a user's own model: sample ``s ~ Dir(switch.alpha0 * 1_K)`` at site
    ``name`` (K = ``x.shape[dim]``) and return ``scale_channels(x, s, data_batch, switch.form,
    switch.steepness, switch.share, dim)``, the same switch a :class:`SwitchedNetwork` with ``switch`` applies.

    x: ``(B, K, ...)``, or ``(P * B, K, ...)`` after an earlier switch (then pass ``data_batch=B``);
    token features ``(B, N, K)``: ``dim=-1``.
    Returns ``(P * B, K, ...)``, particle-major; :func:`.user_model.unfold_particles` shapes
    the logits for the data plate. A fixed site keeps the trained function at ``s = 1/K`` for the
    forms ``Ks``, ``gate`` and ``norm`` (factor 1), and at no value for ``s`` (factor ``1/K``) or
    ``bn`` (exact only up to its eps): the library's layer-by-layer fit therefore fixes the
    other sites with :class:`Unswitched`, which passes x through unscaled for every form."""
    if not isinstance(switch, SwitchConfig):
        raise TypeError(f"dirichlet_switch takes a SwitchConfig (e.g. SwitchConfig(alpha0=0.5)), got {switch!r}")
    K = x.shape[dim]
    concentration = torch.full((K,), switch.alpha0, dtype=x.dtype, device=x.device)
    s = pyro.sample(name, dist.Dirichlet(concentration))
    form = "s" if switch.form == AUTO else switch.form  # a model the library cannot inspect (SwitchConfig)
    return _switch(name, x, s, data_batch, form, switch.steepness, switch.share, dim)
