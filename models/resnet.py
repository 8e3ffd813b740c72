"""Residual networks for 32x32 inputs: ResNet-56 (He et al. 2016, CIFAR variant) and
WRN-28-10 (Zagoruyko & Komodakis 2016).

Only the inner layer of each block is prunable (its first conv, whose channels stay inside
the block); the channels that meet in residual sums are not. ``widths`` gives one inner
width per block; ``layer_groups`` lists the blocks of each stage, so an architecture string
may also give one count per stage.

- ResNet-56: conv 3->16, three stages of 9 basic blocks (16, 32, 64 channels, stride 2 at
  the start of stages 2 and 3), shortcut "A" (strided identity, zero-padded channels: no
  parameters; a ``ChannelScatter``, so the residual channels stay prunable), global average
  pool, linear. 125.5M MACs, 0.85M parameters.
- WRN-28-10: conv 3->16, three groups of 4 pre-activation blocks (BN-ReLU-conv-BN-ReLU-
  [dropout]-conv; widths 160, 320, 640; 1x1 conv shortcut where the shape changes),
  BN-ReLU, global average pool, linear. 5.25G MACs, 36.5M parameters.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..channel_map import ChannelScatter


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, inner: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, inner, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(inner)
        self.conv2 = nn.Conv2d(inner, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.stride = stride
        self.shortcut = ChannelScatter.zero_padding(in_channels, out_channels) if out_channels != in_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        shortcut = x[:, :, :: self.stride, :: self.stride] if self.stride > 1 else x
        if self.shortcut is not None:
            shortcut = self.shortcut(shortcut)
        return torch.relu(out + shortcut)


class PreActBlock(nn.Module):
    def __init__(self, in_channels: int, inner: int, out_channels: int, stride: int, dropout: float):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, inner, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(inner)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(inner, out_channels, 3, 1, 1, bias=False)
        needs_projection = stride != 1 or in_channels != out_channels
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False) if needs_projection else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = torch.relu(self.bn1(x))
        out = self.conv2(self.dropout(torch.relu(self.bn2(self.conv1(pre)))))
        return out + (self.shortcut(pre) if self.shortcut is not None else x)


class _StagedNet(nn.Module):
    """Shared shape: stem conv, stages of blocks, head. Subclasses build the blocks."""

    input_shape = (3, 32, 32)

    def _build(self, stage_channels: Sequence[int], blocks_per_stage: int, widths: Sequence[int] | None, make_block):
        total = len(stage_channels) * blocks_per_stage
        widths = tuple(widths) if widths is not None else tuple(c for c in stage_channels for _ in range(blocks_per_stage))
        if len(widths) != total or min(widths) < 1:
            raise ValueError(f"{type(self).__name__} needs {total} positive inner widths (one per block), got {widths}")
        self.widths = widths
        in_channels, names, groups = 16, [], []
        for s, channels in enumerate(stage_channels):
            stage = nn.Sequential()
            for b in range(blocks_per_stage):
                stride = 2 if s > 0 and b == 0 else 1
                stage.append(make_block(in_channels, widths[s * blocks_per_stage + b], channels, stride))
                in_channels = channels
            self.add_module(f"stage{s + 1}", stage)
            groups.append([f"stage{s + 1}.{b}.conv1" for b in range(blocks_per_stage)])
            names += groups[-1]
        self.prunable_layers, self.layer_groups = tuple(names), groups
        return in_channels


class ResNet56(_StagedNet):
    def __init__(self, widths: Sequence[int] | None = None, num_classes: int = 10):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        out = self._build((16, 32, 64), 9, widths, BasicBlock)
        self.fc = nn.Linear(out, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(x)))
        x = self.stage3(self.stage2(self.stage1(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class WideResNet28x10(_StagedNet):
    """``widen_factor`` k gives stage widths 16k, 32k, 64k (10: WRN-28-10; 1 for tests)."""

    def __init__(self, widths: Sequence[int] | None = None, num_classes: int = 10, dropout: float = 0.0,
                 widen_factor: int = 10):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        out = self._build((16 * widen_factor, 32 * widen_factor, 64 * widen_factor), 4, widths,
                          lambda i, inner, o, stride: PreActBlock(i, inner, o, stride, dropout))
        self.bn = nn.BatchNorm2d(out)
        self.fc = nn.Linear(out, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage3(self.stage2(self.stage1(self.conv(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(torch.relu(self.bn(x)), 1), 1))
