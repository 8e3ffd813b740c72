"""A plain BatchNorm CNN whose first layer is 8x wider than the next: the shape of the real 1-D
audio CNN on which every allocation built from per-site posteriors starved the narrow layers
(issue 40), rebuilt in 2-D for CIFAR-10.

``conv1..conv5`` (3x3, padding 1, no bias), each followed by ``bn<i>`` and ReLU; max-pool 2
after conv2 and conv4; global average pool; linear classifier ``fc``. Default widths
64-8-16-16-32: 7.7M MACs, 15K parameters. All five convs are prunable.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

WIDTHS = (64, 8, 16, 16, 32)


class PlainCNN(nn.Module):
    prunable_layers = ("conv1", "conv2", "conv3", "conv4", "conv5")
    input_shape = (3, 32, 32)

    def __init__(self, widths: Sequence[int] = WIDTHS, num_classes: int = 10):
        super().__init__()
        if len(widths) != 5 or min(widths) < 1:
            raise ValueError(f"PlainCNN takes five positive widths, got {tuple(widths)}")
        self.widths = tuple(int(w) for w in widths)
        channels = 3
        for i, width in enumerate(self.widths, start=1):
            self.add_module(f"conv{i}", nn.Conv2d(channels, width, 3, padding=1, bias=False))
            self.add_module(f"bn{i}", nn.BatchNorm2d(width))
            channels = width
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, 6):
            x = torch.relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x)))
            if i in (2, 4):
                x = torch.max_pool2d(x, 2)
        return self.fc(x.mean((2, 3)))
