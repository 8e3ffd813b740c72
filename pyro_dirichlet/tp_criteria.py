"""Torch-Pruning's own importances as criteria (the DepGraph baselines): ``tp-magnitude``,
``tp-taylor`` and ``tp-hessian``, each over a site's whole dependency group.

Head sites (``"blocks.0.attn:heads"``): the mean importance of a head's rows of q, k, v (whose
groups hold the output projection's columns), as Torch-Pruning's own head pruning does.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn as nn
import torch_pruning as tp

from .groups import default_example, dependency_graph
from .heads import head_layout, is_head_site
from .likelihoods import log_prob
from .scores import ChannelScores, example_batch, needs
from .sites import is_input_site, layer_module, site_layer


def torch_pruning_scores(net: nn.Module, sites: Sequence[str], importance, example_inputs) -> dict[str, torch.Tensor]:
    """Torch-Pruning's ``importance`` of each channel of ``sites`` over its whole dependency group
    (an input site: the producer's channels and their readers); a head site's head: the mean over
    its rows of q, k, v (module docstring)."""
    graph = dependency_graph(net, example_inputs)

    def channels(module: nn.Module, prune, width: int) -> torch.Tensor:
        return importance(graph.get_pruning_group(module, prune, idxs=list(range(width)))).detach().float().cpu()

    scores = {}
    for site in sites:
        if is_head_site(site):
            layout = head_layout(net, site)
            per_linear = []
            for name, sections in layout.rows:
                linear = net.get_submodule(name)
                imp = channels(linear, tp.prune_linear_out_channels, linear.out_features)
                per_linear.append(imp.reshape(sections, layout.size, -1).mean((0, 2)))
            scores[site] = torch.stack(per_linear).mean(0)
            continue
        module = layer_module(net, site_layer(site))
        if is_input_site(site):
            scores[site] = channels(module, tp.prune_linear_in_channels, module.in_features)
        elif isinstance(module, nn.Linear):
            scores[site] = channels(module, tp.prune_linear_out_channels, module.out_features)
        else:
            scores[site] = channels(module, tp.prune_conv_out_channels, module.out_channels)
    return scores


@dataclass(frozen=True)
class TorchPruningMagnitude:
    """``tp-magnitude``: Torch-Pruning's ``GroupMagnitudeImportance`` (DepGraph's baseline: the
    L2 norm of every weight a channel owns across its whole dependency group, the group's
    convs, BatchNorms and readers, averaged over the group), each site's scores divided by
    their mean for the budget (Torch-Pruning's default normaliser)."""
    p: int = 2
    normalisation: ClassVar[str] = "mean"

    def __call__(self, net, sites, data=None, seed=0, likelihood=None):  # likelihood: not read
        importance = tp.importance.GroupMagnitudeImportance(p=self.p, group_reduction="mean", normalizer=None)
        example = default_example(net, example_batch(data, net))
        return ChannelScores(torch_pruning_scores(net, sites, importance, example), self.normalisation, net)


@dataclass(frozen=True)
class TorchPruningTaylor:
    """``tp-taylor``: Torch-Pruning's ``GroupTaylorImportance``, ``|w * dL/dw|`` summed over the
    weights a channel owns across its dependency group (averaged over the group), with dL/dw
    the mean negative log-likelihood's gradient (cross-entropy by default) summed over ``num_batches`` shuffled training batches (a
    copy of ``net`` in eval mode); each site's scores divided by their mean for the budget."""
    num_batches: int = 10
    batch_size: int = 100
    normalisation: ClassVar[str] = "mean"

    def __call__(self, net, sites, data=None, seed=0, likelihood="categorical"):
        data = needs(data, "tp-taylor")
        graded = copy.deepcopy(net).eval().requires_grad_(True)
        graded.zero_grad(set_to_none=True)
        gen = torch.Generator().manual_seed(seed)
        for _, (x, y, _) in zip(range(self.num_batches), data.batches(self.batch_size, shuffle=True, generator=gen)):
            (-log_prob(likelihood, graded(x), y).mean()).backward()
        importance = tp.importance.GroupTaylorImportance(group_reduction="mean", normalizer=None)
        scores = torch_pruning_scores(graded, sites, importance, default_example(graded, example_batch(data, graded)))
        return ChannelScores(scores, self.normalisation, net)


@dataclass(frozen=True)
class TorchPruningHessian:
    """``tp-hessian``: Torch-Pruning's ``GroupHessianImportance`` (grouped Optimal Brain Damage,
    ``w^2 * H_ww`` summed over the weights a channel owns across its dependency group), with the
    diagonal Hessian estimated by the empirical Fisher: the mean over ``num_samples`` shuffled
    training examples of each example's squared negative log-likelihood gradient (one backward pass each;
    Torch-Pruning 1.6.1's own ``accumulate_grad`` keys its sums by name but looks them up by
    parameter, so it keeps only the last example: the sum is made here). Each site's scores are
    divided by their mean for the budget."""
    num_samples: int = 64
    normalisation: ClassVar[str] = "mean"

    def __call__(self, net, sites, data=None, seed=0, likelihood="categorical"):
        data = needs(data, "tp-hessian")
        graded = copy.deepcopy(net).eval().requires_grad_(True)
        params = list(graded.parameters())
        squares = [torch.zeros_like(p) for p in params]
        gen = torch.Generator().manual_seed(seed)
        x, y, _ = next(iter(data.batches(self.num_samples, shuffle=True, generator=gen)))
        for i in range(len(y)):
            nll_i = -log_prob(likelihood, graded(x[i:i + 1]), y[i:i + 1]).sum()
            grads = torch.autograd.grad(nll_i, params, allow_unused=True)
            for square, g in zip(squares, grads):
                if g is not None:
                    square.add_(g.detach().pow(2))
        for p, square in zip(params, squares):
            p.grad = square / len(y)
        importance = tp.importance.GroupHessianImportance(group_reduction="mean", normalizer=None)
        scores = torch_pruning_scores(graded, sites, importance, default_example(graded, example_batch(data, graded)))
        return ChannelScores(scores, self.normalisation, net)
