"""A shortcut that places channels into a wider tensor (ResNet's option A) and stays prunable.

``ChannelScatter`` writes input channel ``in_index[j]`` to output channel ``out_index[j]`` and
leaves the other outputs zero, so ResNet's parameter-free zero-padding shortcut is
``ChannelScatter.zero_padding(16, 32)``. Its input and output channels belong to different
channel groups (the narrower and the wider residual stream); pruning either side drops the
pairs it touches and renumbers the rest (``ChannelScatterPruner``, Torch-Pruning's interface,
registered for every dependency graph this library builds: ``CUSTOM_PRUNERS``).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch_pruning as tp


class ChannelScatter(nn.Module):
    """``y[:, out_index[j]] = x[:, in_index[j]]``, every other channel of y zero.

    x: ``(B, in_channels, ...)`` -> y: ``(B, out_channels, ...)``; in_index, out_index: ``(J,)``.
    """

    def __init__(self, in_channels: int, out_channels: int, in_index: Sequence[int], out_index: Sequence[int]):
        super().__init__()
        if len(in_index) != len(out_index):
            raise ValueError(f"in_index and out_index must pair up, got {len(in_index)} and {len(out_index)} entries")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.register_buffer("in_index", torch.as_tensor(list(in_index), dtype=torch.long), persistent=False)
        self.register_buffer("out_index", torch.as_tensor(list(out_index), dtype=torch.long), persistent=False)

    @classmethod
    def zero_padding(cls, in_channels: int, out_channels: int) -> "ChannelScatter":
        """``F.pad`` of the channel dim by ``(out - in) // 2`` zeros in front and the rest behind."""
        front = (out_channels - in_channels) // 2
        return cls(in_channels, out_channels, range(in_channels), range(front, front + in_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.new_zeros(x.shape[0], self.out_channels, *x.shape[2:])
        return y.index_copy(1, self.out_index, x.index_select(1, self.in_index))

    def extra_repr(self) -> str:
        return f"{self.in_channels} -> {self.out_channels}, {len(self.in_index)} channels placed"


def _keep_pairs(layer: ChannelScatter, side: str, removed: Sequence[int]) -> None:
    """Drop the pairs whose ``side`` ("in" or "out") channel is removed; renumber that side."""
    width = layer.in_channels if side == "in" else layer.out_channels
    gone = set(int(i) for i in removed)
    position = {c: i for i, c in enumerate(c for c in range(width) if c not in gone)}
    ins, outs = layer.in_index.tolist(), layer.out_index.tolist()
    pairs = [(i, o) for i, o in zip(ins, outs) if (i if side == "in" else o) in position]
    ins = [position[i] if side == "in" else i for i, _ in pairs]
    outs = [position[o] if side == "out" else o for _, o in pairs]
    device = layer.in_index.device
    layer.in_index = torch.as_tensor(ins, dtype=torch.long, device=device)
    layer.out_index = torch.as_tensor(outs, dtype=torch.long, device=device)
    if side == "in":
        layer.in_channels = len(position)
    else:
        layer.out_channels = len(position)


class ChannelScatterPruner(tp.pruner.function.BasePruningFunc):
    """Torch-Pruning's pruning functions for :class:`ChannelScatter`."""

    def prune_out_channels(self, layer: ChannelScatter, idxs: Sequence[int]) -> ChannelScatter:
        _keep_pairs(layer, "out", idxs)
        return layer

    def prune_in_channels(self, layer: ChannelScatter, idxs: Sequence[int]) -> ChannelScatter:
        _keep_pairs(layer, "in", idxs)
        return layer

    def get_out_channels(self, layer: ChannelScatter) -> int:
        return layer.out_channels

    def get_in_channels(self, layer: ChannelScatter) -> int:
        return layer.in_channels


CUSTOM_PRUNERS = {ChannelScatter: ChannelScatterPruner()}
