"""The switch posterior as a Torch-Pruning importance, so Torch-Pruning's pruners (global or
per-layer pruning, ignored layers, pruning ratios) can rank channels by posterior means."""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn as nn
import torch_pruning as tp

from .groups import channel_groups, default_example
from .allocation import normalise_scores
from .sites import is_input_site, layer_width, site_layer


class DirichletImportance(tp.importance.Importance):
    """Per-channel importance ``K E[s_k]`` of each switched channel group (mean 1 in every
    group, so groups compare under global pruning, as the pipeline's MAC-budget order);
    ``None`` for a group with no switch, which Torch-Pruning then leaves alone.

    ``scores``: ``{site: posterior means (K,)}`` (e.g. ``posterior_means(idata)``) of the network
    the switches were fitted on, or any criterion's ``ChannelScores`` (then normalised its own
    way, :mod:`.criteria`); input sites (``"fc1:in"``) are ignored. One-shot: a layer that
    has lost channels since (an earlier pruning step) is refused, as the scores no longer
    index its channels.
    """

    def __init__(self, net: nn.Module, scores: Mapping[str, torch.Tensor], example_inputs=None):
        groups = {g.name: g for g in channel_groups(net, default_example(net, example_inputs))}
        by_member = {member: g for g in groups.values() for member in g.members}
        modules = dict(net.named_modules())
        outputs = {site: s for site, s in scores.items() if not is_input_site(site)}
        self.scores = normalise_scores(outputs, getattr(scores, "normalisation", "mean"))
        self.site_of: dict[nn.Module, str] = {}
        for site in outputs:
            group = by_member.get(site_layer(site))
            if group is None:
                raise ValueError(f"{site!r} is not a conv/linear layer of this network")
            self.site_of.update({modules[member]: site for member in group.members})

    def __call__(self, group) -> torch.Tensor | None:
        root, idxs = group[0].dep.target.module, group[0].idxs
        site = self.site_of.get(root)
        if site is None:
            return None
        scores = self.scores[site]
        width = layer_width(root)
        if width != len(scores):
            raise ValueError(f"{site!r} has {width} channels but its posterior scores {len(scores)}: "
                             "DirichletImportance ranks the network the switches were fitted on (one pruning "
                             "step); fit the switches again after pruning")
        return scores[torch.as_tensor(idxs)].to(root.weight.device)
