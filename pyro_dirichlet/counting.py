"""Counting multiply-accumulates (MACs, the literature's "FLOPs") and parameters.

Conv2d: ``H_out * W_out * C_out * (C_in / groups) * kh * kw``; Linear: ``in * out`` per
position. Activations, pooling and BatchNorm are not counted, as in the pruning literature.
``paper_flops`` is the LeNet-5 tables' convention (Bayesian Compression, FLOPs-as-objective,
Dirichlet pruning's Table 1): the MACs plus one add per bias element of every conv/linear
output. (``torch.utils.flop_counter`` reports 2 FLOPs per MAC.)
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from .frozen import frozen


def count_ops(net: nn.Module, input_shape: Sequence[int]) -> dict[str, int]:
    """``{"macs", "paper_flops"}`` of one forward pass of ``net`` on one input of shape
    ``input_shape`` (no batch dim)."""
    macs = bias_adds = 0

    def hook(module, inputs, output):
        nonlocal macs, bias_adds
        outputs = output.numel() // output.shape[0]  # batch 1
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            macs += outputs * (module.in_channels // module.groups) * kh * kw
        else:
            macs += outputs * module.in_features
        bias_adds += outputs if module.bias is not None else 0

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    device = next(net.parameters()).device
    try:
        with frozen(net), torch.no_grad():
            net(torch.zeros(1, *input_shape, device=device))
    finally:
        for h in handles:
            h.remove()
    return {"macs": int(macs), "paper_flops": int(macs + bias_adds)}


def count_macs(net: nn.Module, input_shape: Sequence[int]) -> int:
    """MACs of one forward pass of ``net`` on one input of shape ``input_shape`` (no batch dim)."""
    return count_ops(net, input_shape)["macs"]


def count_params(net: nn.Module) -> int:
    return int(sum(p.numel() for p in net.parameters()))
