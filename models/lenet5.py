"""LeNet-5, Caffe variant, as used by Bayesian Compression and Dirichlet pruning.

Architecture string ``20-50-800-500`` gives the widths of the four prunable layers::

    x (B,1,28,28) -> conv1 5x5 (20) -> ReLU -> maxpool 2
                  -> conv2 5x5 (50) -> ReLU -> maxpool 2 -> flatten (50*4*4 = 800)
                  -> fc1 (800) -> ReLU -> fc2 (500) -> ReLU -> fc3 (10)

With 28x28 inputs this is 2,933,000 multiply-accumulates; the paper's pruned ``5-8-45-15``
is 142,585 (conv1 72,000 + conv2 64,000 + fc1 5,760 + fc2 675 + fc3 150).
"""
from __future__ import annotations

import torch
import torch.nn as nn


class LeNet5(nn.Module):
    prunable_layers = ("conv1", "conv2", "fc1", "fc2")
    input_shape = (1, 28, 28)

    def __init__(self, widths: tuple[int, int, int, int] = (20, 50, 800, 500), num_classes: int = 10):
        super().__init__()
        if len(widths) != 4 or min(widths) < 1:
            raise ValueError(f"LeNet5 needs 4 positive widths, got {widths}")
        c1, c2, f1, f2 = widths
        self.widths = tuple(widths)
        self.conv1 = nn.Conv2d(1, c1, 5)
        self.conv2 = nn.Conv2d(c1, c2, 5)
        self.fc1 = nn.Linear(c2 * 4 * 4, f1)
        self.fc2 = nn.Linear(f1, f2)
        self.fc3 = nn.Linear(f2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)
