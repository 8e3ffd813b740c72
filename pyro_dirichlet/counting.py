"""Counting multiply-accumulates (MACs, the literature's "FLOPs") and parameters.

Conv2d: ``H_out * W_out * C_out * (C_in / groups) * kh * kw``; Linear: ``in * out`` per
position. Biases, activations, pooling and BatchNorm are not counted, as in the pruning
literature. (``torch.utils.flop_counter`` reports 2 FLOPs per MAC.)
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn


def count_macs(net: nn.Module, input_shape: Sequence[int]) -> int:
    """MACs of one forward pass of ``net`` on one input of shape ``input_shape`` (no batch dim)."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        per_position = output.shape[0]  # batch 1
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total += output.numel() // per_position * (module.in_channels // module.groups) * kh * kw
        else:
            total += output.numel() // per_position * module.in_features

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    device = next(net.parameters()).device
    was_training = net.training
    try:
        net.eval()
        with torch.no_grad():
            net(torch.zeros(1, *input_shape, device=device))
    finally:
        net.train(was_training)
        for h in handles:
            h.remove()
    return int(total)


def count_params(net: nn.Module) -> int:
    return int(sum(p.numel() for p in net.parameters()))
