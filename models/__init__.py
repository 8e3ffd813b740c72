"""The network zoo: plain ``torch.nn.Module`` classes, each naming its prunable layers.

``build_model(name, widths=None)`` builds one by name; ``MODELS`` lists them. Every model
has ``prunable_layers`` (switch sites in forward order, one width each in ``widths``: module
names, or ``"<linear>:in"`` for a Linear layer's input features, see ``pyro_dirichlet.sites``),
``input_shape`` (C, H, W or D) and, built here, ``zoo_name``. Residual networks also have
``layer_groups`` (the prunable layers of each stage).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch.nn as nn

from .airbench import Airbench94
from .lenet5 import LeNet5, LeNet5ThreeFC
from .mlp import MLP
from .plain_cnn import PlainCNN
from .resnet import ResNet56, WideResNet28x10
from .vgg import VGG16

MODELS: dict[str, type[nn.Module]] = {"airbench94": Airbench94, "lenet5": LeNet5, "lenet5_3fc": LeNet5ThreeFC, "mlp": MLP, "plain_cnn": PlainCNN, "vgg16": VGG16, "resnet56": ResNet56,
                                      "wrn28_10": WideResNet28x10}


def build_model(name: str, widths: Sequence[int] | None = None, **kwargs) -> nn.Module:
    """Build model ``name`` (a key of ``MODELS``) with optional per-layer ``widths``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    if widths is not None:
        kwargs["widths"] = tuple(int(w) for w in widths)
    net = MODELS[name](**kwargs)
    net.zoo_name = name
    return net


__all__ = ["MODELS", "build_model", "Airbench94", "LeNet5", "LeNet5ThreeFC", "MLP", "PlainCNN", "ResNet56", "VGG16", "WideResNet28x10"]
