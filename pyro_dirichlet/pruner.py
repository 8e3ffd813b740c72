"""``Pruner``: one network, its sites and example inputs, with everything a prune step needs
built once and held (the dependency graph, the sites' widths, the input links), as
Torch-Pruning's ``BasePruner`` holds its ``DG``.

    pruner = pdl.Pruner(net, ["conv1", "conv2", "fc1"], net.input_shape)
    counts = pruner.counts(scores, budget_macs=pruner.macs // 2, allocation="likelihood", data=train)
    small = pruner.trim(scores, counts)             # checked against the masked network
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn as nn

from .allocation import MIN_KEEP, keep_indices
from .allocations import ALLOCATIONS
from .counting import count_macs
from .graph import dependency_graph
from .groups import default_example
from .pruning import input_links, trim
from .sites import site_sizes


class Pruner:
    """``net`` (left as found) with ``sites`` (as :func:`.sites.site_sizes` names them) traced once on
    ``example_inputs`` (a batch or the shape of one input; default ``net.input_shape``)."""

    def __init__(self, net: nn.Module, sites: Sequence[str], example_inputs=None):
        self.net, self.sites = net, list(sites)
        self.example = default_example(net, example_inputs)
        self.graph = dependency_graph(net, self.example)  # held: later calls on this network reuse it
        self.sizes = site_sizes(net, self.sites)
        self.links = input_links(net, self.sites, self.example)
        self.macs = count_macs(net, self.example)

    def counts(self, scores: Mapping[str, torch.Tensor], budget_macs: int, allocation: str = "per-mac", data=None,
               min_keep: float = MIN_KEEP) -> dict[str, int]:
        """``{site: channels kept}`` within ``budget_macs`` by ``pdl.ALLOCATIONS[allocation]``."""
        if allocation not in ALLOCATIONS:
            raise ValueError(f"unknown allocation {allocation!r}; choose one of {sorted(ALLOCATIONS)}")
        return ALLOCATIONS[allocation](self.net, scores, budget_macs, self.example, links=self.links, data=data,
                                       min_keep=min_keep)

    def keep(self, scores: Mapping[str, torch.Tensor], counts: Mapping[str, int]) -> dict[str, list[int]]:
        """The ``counts[site]`` best channels of each site by ``scores``."""
        return keep_indices(scores, counts, self.links)

    def trim(self, scores: Mapping[str, torch.Tensor], counts: Mapping[str, int]) -> nn.Module:
        """A smaller dense copy keeping each site's best channels (:func:`.pruning.trim`, self-checked)."""
        return trim(self.net, self.keep(scores, counts), self.example)
