"""A multilayer perceptron: ``x (B, D) -> [Linear -> ReLU] * len(widths) -> Linear``."""
from __future__ import annotations

import torch
import torch.nn as nn


class MLP(nn.Module):
    """Hidden layers are named ``hidden0, hidden1, ...``; all are prunable."""

    def __init__(self, in_features: int = 784, widths: tuple[int, ...] = (300, 100), num_classes: int = 10):
        super().__init__()
        if len(widths) == 0 or min(widths) < 1:
            raise ValueError(f"MLP needs at least one positive hidden width, got {widths}")
        self.widths = tuple(widths)
        self.input_shape = (in_features,)
        self.prunable_layers = tuple(f"hidden{i}" for i in range(len(widths)))
        sizes = (in_features, *widths)
        for i in range(len(widths)):
            self.add_module(f"hidden{i}", nn.Linear(sizes[i], sizes[i + 1]))
        self.out = nn.Linear(sizes[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x, 1)
        for name in self.prunable_layers:
            x = torch.relu(getattr(self, name)(x))
        return self.out(x)
