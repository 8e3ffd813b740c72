"""Inference latency: the speed a user of a pruned network feels.

``latency_ms`` times one forward pass (eval mode, no autograd) of a batch of zeros:
``warmup`` untimed passes, then the median of ``repeats`` timed ones. On CUDA each pass is
timed with CUDA events (GPU time between two recorded events, synchronised); on the CPU
with ``time.perf_counter``.
"""
from __future__ import annotations

import statistics
import time

import torch
import torch.nn as nn

from .frozen import frozen
from .groups import input_shape


@torch.no_grad()
def latency_ms(net: nn.Module, example_inputs, batch_size: int, warmup: int = 10, repeats: int = 50) -> float:
    """Median milliseconds of ``net(x)`` for zeros x ``(batch_size, *shape)`` on the net's device
    (``example_inputs``: one batch, or the shape of one input)."""
    if batch_size < 1 or repeats < 1 or warmup < 0:
        raise ValueError(f"need batch_size, repeats >= 1 and warmup >= 0, got {batch_size}, {repeats}, {warmup}")
    device = next(net.parameters()).device
    x = torch.zeros(batch_size, *input_shape(net, example_inputs), device=device)
    with frozen(net):
        for _ in range(warmup):
            net(x)
        times = [_time_cuda(net, x) if device.type == "cuda" else _time_cpu(net, x) for _ in range(repeats)]
    return statistics.median(times)


def _time_cpu(net: nn.Module, x: torch.Tensor) -> float:
    start = time.perf_counter()
    net(x)
    return (time.perf_counter() - start) * 1e3


def _time_cuda(net: nn.Module, x: torch.Tensor) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize(x.device)
    start.record()
    net(x)
    end.record()
    end.synchronize()
    return start.elapsed_time(end)
