"""VGG-16 with BatchNorm for 32x32 inputs (CIFAR-10): 13 conv layers, 2 hidden linear layers.

``conv1..conv13`` (3x3, padding 1, each followed by ``bn<i>`` and ReLU; max-pool after
conv2, 4, 7, 10, 13), then ``fc1`` (512 -> 512), ``fc2`` (512 -> 512), each with ReLU, and
the classifier ``fc3``. All 15 are prunable. Full widths: 313.7M MACs, 15.2M parameters.
"""
from __future__ import annotations

import torch
import torch.nn as nn

FULL_WIDTHS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512)
POOL_AFTER = (2, 4, 7, 10, 13)


class VGG16(nn.Module):
    input_shape = (3, 32, 32)

    def __init__(self, widths: tuple[int, ...] = FULL_WIDTHS, num_classes: int = 10):
        super().__init__()
        if len(widths) != 15 or min(widths) < 1:
            raise ValueError(f"VGG16 needs 15 positive widths (13 conv + 2 linear), got {widths}")
        self.widths = tuple(widths)
        self.prunable_layers = tuple(f"conv{i}" for i in range(1, 14)) + ("fc1", "fc2")
        channels = 3
        for i, width in enumerate(widths[:13], start=1):
            self.add_module(f"conv{i}", nn.Conv2d(channels, width, 3, padding=1, bias=False))
            self.add_module(f"bn{i}", nn.BatchNorm2d(width))
            channels = width
        self.fc1 = nn.Linear(channels, widths[13])
        self.fc2 = nn.Linear(widths[13], widths[14])
        self.fc3 = nn.Linear(widths[14], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, 14):
            x = torch.relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x)))
            if i in POOL_AFTER:
                x = torch.max_pool2d(x, 2)
        x = torch.flatten(x, 1)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))
