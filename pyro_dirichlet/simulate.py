"""A simulated binary classifier with a known switch (the supplement's section 1 study).

Ground truth for sizes ``(d_x, d_h)`` and a seed (all draws from one ``torch.Generator``):

- switch ``s* ~ Dir(concentration * 1_{d_h})``, concentration 0.1 by default: sparse, a
  few units hold most of the mass and most are near zero;
- ``W1 ~ N(0, 1/d_x)`` ``(d_h, d_x)``, ``b1 ~ N(0, 1)``, ``W2 ~ N(0, 1)`` ``(1, d_h)``;
- inputs: ``N/2`` rows from ``N(0, I)`` and ``N/2`` from ``N(2 * 1, 0.2 I)`` (variance 0.2
  per coordinate), in that order;
- logit ``f(x) = W2 (relu(W1 x + b1) * d_h s*) + b2``. ``W2`` is then rescaled so that the
  logits of the N inputs have standard deviation ``logit_sd`` (3 by default: labels are
  informative but not deterministic) and ``b2`` is minus their median (balanced classes);
- labels ``y_i ~ Bernoulli(sigmoid(f(x_i)))``, one draw per input.

The network is the zoo's :class:`~pyro_dirichlet.models.MLP` with one hidden layer
``hidden0`` and one output logit; the switch acts on ``hidden0`` exactly as the fitted
switches do (``relu(h) * d_h s = relu(h * d_h s)`` since ``s >= 0``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from .data import FeatureDataset
from .switch_config import SwitchConfig
from .switches import SwitchedNetwork

__all__ = ["SWITCHED_LAYER", "SyntheticProblem", "simulate"]

SWITCHED_LAYER = "hidden0"


@dataclass
class SyntheticProblem:
    net: nn.Module  # the MLP with the true weights, switch not applied
    true_switch: torch.Tensor  # (d_h,) on the simplex
    data: FeatureDataset  # x (N, d_x) float32, y (N,) float32 in {0, 1}


def simulate(
    d_x: int, d_h: int, num_data: int = 4000, concentration: float = 0.1, logit_sd: float = 3.0, seed: int = 0
) -> SyntheticProblem:
    """Draw a ground truth and a data set as described in the module docstring."""
    from pyro_dirichlet.models import build_model

    if d_x < 1 or d_h < 2 or num_data < 2 or num_data % 2:
        raise ValueError(f"need d_x >= 1, d_h >= 2 and an even num_data >= 2; got {d_x}, {d_h}, {num_data}")
    gen = torch.Generator().manual_seed(seed)
    gamma = torch.distributions.Gamma(torch.full((d_h,), concentration), 1.0)
    with torch.random.fork_rng(devices=[]):  # Gamma sampling takes no generator
        torch.manual_seed(seed)
        g = gamma.sample().double()
    true_switch = (g / g.sum()).float()
    net = build_model("mlp", [d_h], in_features=d_x, num_classes=1)
    with torch.no_grad():
        net.hidden0.weight.copy_(torch.randn(d_h, d_x, generator=gen) / d_x**0.5)
        net.hidden0.bias.copy_(torch.randn(d_h, generator=gen))
        net.out.weight.copy_(torch.randn(1, d_h, generator=gen))
        net.out.bias.zero_()
        half = num_data // 2
        x = torch.cat([torch.randn(half, d_x, generator=gen), 2 + 0.2**0.5 * torch.randn(half, d_x, generator=gen)])
        switched = SwitchedNetwork(net, [SWITCHED_LAYER], SwitchConfig(form="Ks"))
        logits = switched.forward(x, {SWITCHED_LAYER: true_switch}).squeeze(-1)
        scale = logit_sd / logits.std()
        net.out.weight.mul_(scale)
        logits = logits * scale
        net.out.bias.fill_(-logits.median().item())
        logits = logits + net.out.bias
        y = torch.bernoulli(torch.sigmoid(logits), generator=gen)
    return SyntheticProblem(net.eval(), true_switch, FeatureDataset(x, y, f"synthetic-{d_x}x{d_h}"))
