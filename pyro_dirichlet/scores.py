"""What every criterion returns and shares: :class:`ChannelScores`, the :class:`Criterion` protocol,
and the two checks of its data."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar, Protocol

import torch
import torch.nn as nn


class ChannelScores(dict):
    """``{site: (K,) scores}`` with how they compare across layers (``normalisation``, one of
    ``allocation.NORMALISATIONS``) and the ``network`` they rank."""

    def __init__(self, scores: Mapping[str, torch.Tensor], normalisation: str, network: nn.Module):
        super().__init__({name: s.detach().float().cpu() for name, s in scores.items()})
        self.normalisation, self.network = normalisation, network


class Criterion(Protocol):
    """Per-channel scores of ``sites`` of ``net`` (data-driven criteria read ``data`` and explain its
    targets by ``likelihood``, :mod:`.likelihoods`; ``seed`` fixes their randomness); ``net`` is left
    as found."""

    normalisation: ClassVar[str]

    def __call__(self, net: nn.Module, sites: Sequence[str], data=None, seed: int = 0,
                 likelihood="categorical") -> ChannelScores: ...


def needs(data, name: str):
    if data is None:
        raise ValueError(f"the {name} criterion reads training data: call it with data=<your training ArrayDataset>")
    return data


def example_batch(data, net: nn.Module | None = None):
    """One input batch of ``data`` to trace ``net`` on (None: the zoo's ``net.input_shape``)."""
    if data is None:
        if net is not None and getattr(net, "input_shape", None) is None:
            raise ValueError("this criterion traces the network once to find its channel groups: call it with "
                             "data=<your data set> (one batch is used), or give the network an input_shape")
        return None
    return next(iter(data.batches(1)))[0]
