"""LeNet-5 in two variants.

``LeNet5`` (zoo name ``lenet5``) is **LeNet-5-Caffe**, the network of the literature's LeNet-5
tables (Bayesian Compression, FLOPs-as-objective, Dirichlet pruning's supplement Table 1)::

    x (B,1,28,28) -> conv1 5x5 (20) -> ReLU -> maxpool 2 -> conv2 5x5 (50) -> ReLU -> maxpool 2
                  -> flatten (50*4*4 = 800) -> fc1 (500) -> ReLU -> fc2 (10)

431,080 parameters, 2,293,000 MACs at 28x28. Its four switch sites, in the order of the
literature's architecture strings, are conv1's filters, conv2's filters, fc1's *input*
features (``"fc1:in"``: 16 per conv2 filter) and fc1's units: ``5-8-45-15`` is 136,825 MACs
(72,000 + 64,000 + 675 + 150). Widths ``(c1, c2, f, u)`` with ``f < 16 * c2`` build an fc1 that
reads ``f`` of the ``16 * c2`` flattened features (:class:`~pyro_dirichlet.sites.InputSelect`,
spread over the filters), the same structure trimming gives. Caffe's prototxt has no ReLU
after the convs; like the PyTorch code of Bayesian Compression, this one has (the MACs and
parameters are the same).

``LeNet5ThreeFC`` (``lenet5_3fc``) is the variant of the Dirichlet pruning authors' research
scripts, with one more fully connected layer: ``... flatten (800) -> fc1 (800) -> ReLU -> fc2
(500) -> ReLU -> fc3 (10)``; widths ``20-50-800-500`` are the outputs of conv1, conv2, fc1,
fc2 (1,071,880 parameters, 2,933,000 MACs; ``5-8-45-15`` is 142,585 MACs on it).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from pyro_dirichlet.sites import InputSelect

POSITIONS = 16  # 4 x 4 positions of each conv2 filter after the second max-pool


def spread_features(num_features: int, channels: int, positions: int = POSITIONS) -> list[int]:
    """``num_features`` flattened feature indices spread over ``channels`` channels in turn
    (position 0 of every channel, then position 1, ...), sorted."""
    return sorted((j % channels) * positions + j // channels for j in range(num_features))


def _conv_features(x: torch.Tensor, conv1: nn.Conv2d, conv2: nn.Conv2d) -> torch.Tensor:
    x = torch.max_pool2d(torch.relu(conv1(x)), 2)
    return torch.flatten(torch.max_pool2d(torch.relu(conv2(x)), 2), 1)


class LeNet5(nn.Module):
    prunable_layers = ("conv1", "conv2", "fc1:in", "fc1")
    input_shape = (1, 28, 28)

    def __init__(self, widths: tuple[int, int, int, int] = (20, 50, 800, 500), num_classes: int = 10):
        super().__init__()
        if len(widths) != 4 or min(widths) < 1:
            raise ValueError(f"LeNet5 needs 4 positive widths (conv1, conv2, fc1 inputs, fc1 units), got {widths}")
        c1, c2, features, units = widths
        if not c2 <= features <= POSITIONS * c2:
            raise ValueError(f"LeNet5 widths {tuple(widths)}: fc1 reads {features} features, but {c2} conv2 filters "
                             f"give at most {POSITIONS * c2} ({POSITIONS} each) and need at least {c2} (one each)")
        self.widths = tuple(widths)
        self.conv1 = nn.Conv2d(1, c1, 5)
        self.conv2 = nn.Conv2d(c1, c2, 5)
        fc1 = nn.Linear(features, units)
        self.fc1 = fc1 if features == POSITIONS * c2 else InputSelect(fc1, spread_features(features, c2))
        self.fc2 = nn.Linear(units, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(_conv_features(x, self.conv1, self.conv2))))


class LeNet5ThreeFC(nn.Module):
    prunable_layers = ("conv1", "conv2", "fc1", "fc2")
    input_shape = (1, 28, 28)

    def __init__(self, widths: tuple[int, int, int, int] = (20, 50, 800, 500), num_classes: int = 10):
        super().__init__()
        if len(widths) != 4 or min(widths) < 1:
            raise ValueError(f"LeNet5ThreeFC needs 4 positive widths, got {widths}")
        c1, c2, f1, f2 = widths
        self.widths = tuple(widths)
        self.conv1 = nn.Conv2d(1, c1, 5)
        self.conv2 = nn.Conv2d(c1, c2, 5)
        self.fc1 = nn.Linear(c2 * POSITIONS, f1)
        self.fc2 = nn.Linear(f1, f2)
        self.fc3 = nn.Linear(f2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.fc1(_conv_features(x, self.conv1, self.conv2)))
        return self.fc3(torch.relu(self.fc2(x)))
