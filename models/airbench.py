"""The CIFAR-10 testbed network: airbench94 (Jordan, "94% on CIFAR-10 in 3.29 seconds on a
single GPU", arXiv 2404.00498), written from the paper's description.

- ``whiten``: a 2x2 conv 3->24 (no padding, 32x32 -> 31x31) whose weights are the training
  patches' whitening filters and their negatives (:func:`pyro_dirichlet.airbench.init_whitening`),
  frozen; its bias trains for the first epochs. Then GELU.
- Three groups ``block1..3`` of conv 3x3 (same padding, no bias) -> max-pool 2 -> BN -> GELU ->
  conv 3x3 -> BN -> GELU, widths 64, 256, 256 (31 -> 15 -> 7 -> 3 pixels).
- Max-pool 3 -> flatten -> bias-free linear 256 -> 10, logits scaled by 1/9.

BatchNorm: weights fixed at 1 (not trained), biases trained, momentum 0.4 (the paper's 0.6 in
its convention), eps 1e-12. Convs start as Dirac (identity) filters on their first in-channels
(the rest keep PyTorch's default). Prunable: the six convs' output channels (each feeds its own
BN). 1.97M parameters, 118M MACs (at the default widths).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

WIDTHS = (64, 64, 256, 256, 256, 256)


def _conv(cin: int, cout: int) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
    with torch.no_grad():
        nn.init.dirac_(conv.weight[:min(cin, cout)])
    return conv


def _norm(channels: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels, eps=1e-12, momentum=0.4)
    bn.weight.requires_grad_(False)
    return bn


class ConvGroup(nn.Module):
    """conv -> max-pool 2 -> BN -> GELU -> conv -> BN -> GELU."""

    def __init__(self, cin: int, mid: int, cout: int):
        super().__init__()
        self.conv1, self.pool, self.norm1 = _conv(cin, mid), nn.MaxPool2d(2), _norm(mid)
        self.conv2, self.norm2, self.act = _conv(mid, cout), _norm(cout), nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm1(self.pool(self.conv1(x))))
        return self.act(self.norm2(self.conv2(x)))


class Scale(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


class Airbench94(nn.Module):
    """``widths``: the six convs' output channels (default 64, 64, 256, 256, 256, 256)."""

    prunable_layers = ("block1.conv1", "block1.conv2", "block2.conv1", "block2.conv2", "block3.conv1", "block3.conv2")
    input_shape = (3, 32, 32)

    def __init__(self, widths: Sequence[int] = WIDTHS, num_classes: int = 10):
        super().__init__()
        if len(widths) != 6 or min(widths) < 1:
            raise ValueError(f"airbench94 takes six positive widths (one per conv), got {tuple(widths)}")
        self.widths = tuple(int(w) for w in widths)
        w = self.widths
        self.whiten = nn.Conv2d(3, 24, 2, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)
        self.act = nn.GELU()
        self.block1, self.block2, self.block3 = ConvGroup(24, w[0], w[1]), ConvGroup(w[1], w[2], w[3]), \
            ConvGroup(w[3], w[4], w[5])
        self.pool = nn.MaxPool2d(3)
        self.head = nn.Linear(w[5], num_classes, bias=False)
        self.scale = Scale(1 / 9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block3(self.block2(self.block1(self.act(self.whiten(x)))))
        return self.scale(self.head(self.pool(x).flatten(1)))
