"""Run a user's module frozen for a while and hand it back exactly as it was found."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch.nn as nn


@contextmanager
def frozen(net: nn.Module) -> Iterator[nn.Module]:
    """``net`` in eval mode (BatchNorm statistics and dropout fixed) with ``requires_grad=False``
    on every parameter; on exit every module's mode and every parameter's flag are restored."""
    modes = [(m, m.training) for m in net.modules()]
    flags = [(p, p.requires_grad) for p in net.parameters()]
    net.eval().requires_grad_(False)
    try:
        yield net
    finally:
        for m, training in modes:
            m.training = training
        for p, flag in flags:
            p.requires_grad_(flag)


@contextmanager
def hooks(handles) -> Iterator[None]:
    """Remove every hook in ``handles`` (``RemovableHandle``s) on exit."""
    handles = list(handles)
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def call(net: nn.Module, inputs):
    """``net`` applied to a tensor, or to a tuple (positional) / dict (keyword) of arguments."""
    if isinstance(inputs, dict):
        return net(**inputs)
    if isinstance(inputs, (tuple, list)):
        return net(*inputs)
    return net(inputs)
