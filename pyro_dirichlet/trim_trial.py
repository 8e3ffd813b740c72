"""Refusing before the fit: each candidate group is trimmed once, when the groups are built, so a
site whose trimming cannot run or cannot match the masked network is refused then (naming the layer
and the reason), never first at :func:`.pruning.trim` after a whole fit.

The trial removes channel 0 of every candidate group at once (one trim when all pass) and, if that
fails, bisects to the groups that fail alone: ``O(f log n)`` trims for ``f`` failing of ``n`` groups.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
import torch.nn as nn

from .allocation import CoupledLayersError
from .pruning import TrimMismatchError, _masked_difference, _surgery

__all__ = ["untrimmable"]


def _why(net: nn.Module, layers: Sequence[str], sizes: dict[str, int], shape: Sequence[int]) -> str | None:
    """Why trimming channel 0 of each of ``layers`` fails together (None: it computes what the masked
    network computes)."""
    keep = {layer: list(range(1, sizes[layer])) for layer in layers}
    try:
        pruned, masks, outputs = _surgery(net, keep, shape, allow_output=False)
        difference, scale = _masked_difference(net, pruned, masks, shape, outputs)
    except (TrimMismatchError, CoupledLayersError) as e:
        return str(e)
    except (RuntimeError, IndexError, ValueError) as e:  # Torch-Pruning's surgery itself failed
        return f"Torch-Pruning's surgery failed ({type(e).__name__}: {str(e)[:200]})"
    if difference <= 1e-4 * scale:
        return None
    return (f"the trimmed network's outputs differ from the masked network's by {difference:.3g} on a scale of "
            f"{scale:.3g} (the removed channels still reach the output another way, e.g. a normalisation over the "
            "channels or a reshape that is not channel-major)")


def untrimmable(net: nn.Module, sizes: dict[str, int], example: torch.Tensor) -> dict[str, str]:
    """``{layer: why}`` for the groups (named by a layer, of ``sizes[layer]`` channels) whose trimming
    with channel 0 removed fails alone (module docstring); ``example``: one batch of one tensor."""
    shape = tuple(example.shape[1:])
    failing: dict[str, str] = {}

    def search(layers: list[str]) -> None:
        why = _why(net, layers, sizes, shape)
        if why is None:
            return
        if len(layers) == 1:
            failing[layers[0]] = why
            return
        half = len(layers) // 2
        search(layers[:half])
        search(layers[half:])

    layers = [layer for layer, k in sizes.items() if k > 1]
    with warnings.catch_warnings():  # Torch-Pruning warns about the same parameters at every trace
        warnings.simplefilter("ignore")
        if layers:
            search(layers)
    return failing
