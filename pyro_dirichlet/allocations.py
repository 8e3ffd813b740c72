"""How many channels each site keeps under a MAC budget: a registry shaped like ``CRITERIA``.

``ALLOCATIONS[name](net, scores, budget_macs, example_inputs=None, links=None, data=None)``
returns ``{site: count}``; every one keeps each site's floor (``min_keep``, :data:`.allocation.MIN_KEEP`).

- ``per-mac``: :func:`.allocation.counts_for_budget`, the global order of normalised score per
  MAC of a channel (the library's default so far).
- ``by-score``: the same order by normalised score alone.
- ``uniform``: the largest single keep share of every site that fits (the scores' values unused).
- ``likelihood``: how much each site can lose, from the fitted model's likelihood. For each site
  l and keep count k on a grid from its floor to K_l, the network with site l alone cut to its k
  best channels (by ``scores``: the posterior means) is trimmed and its mean log-likelihood
  ``LL_l(k) = mean_n log p(y_n | x_n)`` measured on ``data``; channel j of site l (j-th best) is
  worth ``LL_l(j) - LL_l(j - 1)`` (interpolated linearly between grid points, made non-increasing
  in j from the tail so that worse channels never outrank better ones), and the greedy knapsack
  removes the least worth per MAC first. A layer whose next cut costs much likelihood keeps its
  channels whatever its width, so a narrow layer that the next depends on is not starved.
- ``likelihood-path``: the same likelihood, cut jointly rather than one site at a time. From the
  full network, each step cuts ``1 / steps`` of its width (its worst channels by ``scores``) off
  the site that loses the least log-likelihood per MAC saved, given every cut before it:
  ``argmin_l (LL(c) - LL(c - d_l)) / (M(c) - M(c - d_l))`` (lazily: a site's cost is re-measured
  when it comes first, so a step costs a few evaluations, not one per site). The path runs once down to every
  site's floor; a budget takes the first point on it that fits, with the last site cut only as
  far as the budget needs. It sees what single-site curves miss: cutting two sites together
  costs more than the sum of cutting each.

Allocations with a ``state`` method (the two likelihoods) split into a budget-free, cached step
``state(net, scores, data, example_inputs, links, min_keep)`` (JSON) and ``counts(net, state,
sizes, budget_macs, example_inputs, links, min_keep)``.
"""
from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .allocation import MIN_KEEP, Links, counts_for_budget, feasible_counts, floor_counts, keep_indices, largest_fitting
from .counting import mac_model
from .frozen import frozen
from .groups import default_example
from .pruning import trim
from .scores import ChannelScores, needs

__all__ = ["ALLOCATIONS", "Allocation", "ScoreOrder", "Uniform", "Likelihood", "LikelihoodPath", "Stateful",
           "uniform_counts", "log_likelihood", "cut_curves", "channel_worth", "counts_from_curves"]


class Allocation(Protocol):
    def __call__(self, net: nn.Module, scores: Mapping[str, torch.Tensor], budget_macs: int, example_inputs=None,
                 links: Links | None = None, data=None, min_keep: float = MIN_KEEP) -> dict[str, int]: ...


@dataclass(frozen=True)
class ScoreOrder:
    """``per-mac`` / ``by-score``: :func:`.allocation.counts_for_budget`."""
    per_mac: bool

    def __call__(self, net, scores, budget_macs, example_inputs=None, links=None, data=None, min_keep=MIN_KEEP):
        return counts_for_budget(net, scores, budget_macs, example_inputs, links=links, per_mac=self.per_mac,
                                 min_keep=min_keep)


def uniform_counts(net: nn.Module, sizes: Mapping[str, int], budget_macs: int, example_inputs=None,
                   links: Links | None = None, min_keep: float = MIN_KEEP) -> dict[str, int]:
    """``round(r K_l)`` of every site (at least its floor), the largest share r whose MACs fit."""
    macs = mac_model(net, list(sizes), default_example(net, example_inputs))
    floor = floor_counts(sizes, min_keep)

    def counts(r: float) -> dict[str, int]:
        return feasible_counts({s: max(floor[s], round(r * k)) for s, k in sizes.items()}, links)

    if macs(counts(0.0)) > budget_macs:
        raise ValueError(f"budget of {budget_macs:,} MACs is below the smallest uniform network "
                         f"({macs(counts(0.0)):,} MACs, every site at its floor); raise the budget or lower min_keep")
    return counts(largest_fitting(lambda r: macs(counts(r)) <= budget_macs, 0.0))


@dataclass(frozen=True)
class Uniform:
    def __call__(self, net, scores, budget_macs, example_inputs=None, links=None, data=None, min_keep=MIN_KEEP):
        return uniform_counts(net, {s: len(v) for s, v in scores.items()}, budget_macs, example_inputs, links, min_keep)


@torch.no_grad()
def log_likelihood(net: nn.Module, data, batch_size: int = 500) -> float:
    """Mean categorical log-likelihood ``mean_n log softmax(net(x_n))[y_n]`` of ``data`` (eval mode)."""
    total, n = 0.0, 0
    with frozen(net):
        for x, y, _ in data.batches(batch_size):
            total -= F.cross_entropy(net(x), y, reduction="sum").item()
            n += len(y)
    return total / n


def cut_curves(net: nn.Module, scores: Mapping[str, torch.Tensor], data, example_inputs=None,
               links: Links | None = None, grid: int = 8, min_keep: float = MIN_KEEP) -> dict[str, dict[int, float]]:
    """``{site: {k: LL_l(k)}}``: the log-likelihood with site l alone cut to its k best channels."""
    example = default_example(net, example_inputs)
    sizes = {s: len(v) for s, v in scores.items()}
    floor = floor_counts(sizes, min_keep)
    full = log_likelihood(net, data)
    curves = {}
    for site, size in sizes.items():
        ks = sorted({round(floor[site] + (size - floor[site]) * i / grid) for i in range(grid)})
        curve = {size: full}
        for k in ks:
            counts = feasible_counts({**sizes, site: k}, links)
            small = trim(net, keep_indices(scores, counts, links), example)
            curve[k] = log_likelihood(small, data)
        curves[site] = dict(sorted(curve.items()))
    return curves


def channel_worth(curve: Mapping[int, float], size: int) -> torch.Tensor:
    """``(size,)``: the j-th best channel's log-likelihood gain ``LL(j) - LL(j - 1)`` from a curve
    on a grid of counts (linear in between, flat below its lowest count, which is the floor that
    no budget removes), made non-increasing in j."""
    at = np.interp(np.arange(size + 1), list(curve), list(curve.values()))
    gain = np.maximum.accumulate(np.diff(at)[::-1])[::-1]
    return torch.tensor(gain.copy(), dtype=torch.float32)


def counts_from_curves(net: nn.Module, curves: Mapping[str, Mapping[int, float]], sizes: Mapping[str, int],
                       budget_macs: int, example_inputs=None, links: Links | None = None,
                       min_keep: float = MIN_KEEP) -> dict[str, int]:
    """The ``likelihood`` allocation's counts from :func:`cut_curves` (module docstring)."""
    worth = ChannelScores({s: channel_worth(curves[s], k) for s, k in sizes.items()}, "none", net)
    return counts_for_budget(net, worth, budget_macs, example_inputs, links=links, normalisation="none", per_mac=True,
                             min_keep=min_keep)


class Stateful:
    """An allocation whose budget-free part is computed once (module docstring)."""

    def __call__(self, net, scores, budget_macs, example_inputs=None, links=None, data=None, min_keep=MIN_KEEP):
        state = self.state(net, scores, data, example_inputs, links, min_keep)
        return self.counts(net, state, {s: len(v) for s, v in scores.items()}, budget_macs, example_inputs, links,
                           min_keep)


@dataclass(frozen=True)
class Likelihood(Stateful):
    """``likelihood`` (module docstring): needs ``data`` (a held-out or fit split, ``examples`` of it used).
    State: ``{site: [[k, LL_l(k)], ...]}``."""
    grid: int = 8
    examples: int = 2000

    def state(self, net, scores, data, example_inputs=None, links=None, min_keep=MIN_KEEP):
        data = needs(data, "likelihood allocation").subset(self.examples)
        curves = cut_curves(net, scores, data, example_inputs, links, self.grid, min_keep)
        return {site: [[k, ll] for k, ll in curve.items()] for site, curve in curves.items()}

    def counts(self, net, state, sizes, budget_macs, example_inputs=None, links=None, min_keep=MIN_KEEP):
        curves = {site: {int(k): ll for k, ll in points} for site, points in state.items()}
        return counts_from_curves(net, curves, sizes, budget_macs, example_inputs, links, min_keep)


@dataclass(frozen=True)
class LikelihoodPath(Stateful):
    """``likelihood-path`` (module docstring). State: ``[{"counts", "macs", "ll"}, ...]``, full to floors."""
    steps: int = 8
    examples: int = 1000

    def state(self, net, scores, data, example_inputs=None, links=None, min_keep=MIN_KEEP):
        data = needs(data, "likelihood-path allocation").subset(self.examples)
        example = default_example(net, example_inputs)
        sizes = {s: len(v) for s, v in scores.items()}
        floor, macs = floor_counts(sizes, min_keep), mac_model(net, list(sizes), example)
        chunk = {s: max(1, round(k / self.steps)) for s, k in sizes.items()}
        counts = dict(sizes)
        path = [{"counts": counts, "macs": macs(counts), "ll": log_likelihood(net, data)}]

        def option(site):  # (LL lost per MAC saved, the cut counts, their LL), or None at the floor
            cut = feasible_counts({**counts, site: max(floor[site], counts[site] - chunk[site])}, links)
            saved = path[-1]["macs"] - macs(cut)
            if saved <= 0:
                return None
            value = log_likelihood(trim(net, keep_indices(scores, cut, links), example), data)
            return (path[-1]["ll"] - value) / saved, cut, value
        # lazy greedy: a site's cost is re-measured only when it comes first; it is taken if it still
        # costs no more than the next site's last measured cost (exact where cuts only grow dearer)
        queue = [(o[0], site) for site in sizes if (o := option(site)) is not None]
        heapq.heapify(queue)
        while queue:
            _, site = heapq.heappop(queue)
            fresh = option(site)
            if fresh is None:
                continue
            if queue and fresh[0] > queue[0][0]:
                heapq.heappush(queue, (fresh[0], site))
                continue
            counts = fresh[1]
            path.append({"counts": counts, "macs": macs(counts), "ll": fresh[2]})
            heapq.heappush(queue, (fresh[0], site))
        return path

    def counts(self, net, state, sizes, budget_macs, example_inputs=None, links=None, min_keep=MIN_KEEP):
        fits = [i for i, point in enumerate(state) if point["macs"] <= budget_macs]
        if not fits:
            raise ValueError(f"budget of {budget_macs:,} MACs is below the likelihood path's end ({state[-1]['macs']:,} "
                             "MACs, every site at its floor); raise the budget or lower min_keep")
        if fits[0] == 0:
            return dict(state[0]["counts"])
        before, after = state[fits[0] - 1]["counts"], state[fits[0]]["counts"]
        site = next(s for s in sizes if after[s] != before[s])
        macs = mac_model(net, list(sizes), default_example(net, example_inputs))
        for k in range(before[site] - 1, after[site] - 1, -1):  # cut that site only as far as the budget needs
            counts = feasible_counts({**after, site: k}, links)
            if macs(counts) <= budget_macs:
                return counts
        return dict(after)


ALLOCATIONS: dict[str, Allocation] = {"per-mac": ScoreOrder(True), "by-score": ScoreOrder(False),
                                      "uniform": Uniform(), "likelihood": Likelihood(),
                                      "likelihood-path": LikelihoodPath()}
