"""Choosing how many channels of each site to keep.

Keep counts come from (a) an architecture string ``"5-8-45-15"`` (one count per switched
site, in order), (b) a MAC budget, or (c) a posterior-mass threshold per layer. Within a
site the channels with the highest scores (posterior means) are kept.

Input sites (``"fc1:in"``, :mod:`.sites`) are linked to the layer that produces their
features (:func:`.pruning.input_links`): feature f belongs to producer channel ``f // stride``
(``stride`` features per channel, 16 for LeNet-5's conv2 -> flatten -> fc1). When the
producer is switched too, an input site keeps between one and ``stride`` features of each
kept producer channel (so ``count_in <= stride * count_producer``), and at least the best
feature of each, so no kept producer channel is left without a reader.

MAC budget: channels are ordered globally by ``K_l * E_q[s_lk]`` (1 for every channel
under the uniform switch, so layers compare), per MAC of a channel by default
(:data:`PER_MAC`; with a parameter budget too, per a weighted share of both budgets, the weight
searched), and the longest prefix of that order whose removal brings the network
within the budget is removed; binary search over the prefix length, since MACs fall as
channels go.

Per-layer floor: every budget allocation keeps at least ``ceil(min_keep * K_l)`` (and at
least one) of each site's K_l channels, ``min_keep = MIN_KEEP = 0.1`` by default (Torch-Pruning's
``max_pruning_ratio=0.9``): one channel is no floor, a layer cut to 1 of 16 ruins a network.
An architecture string is taken as given.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn as nn

from .counting import mac_model, param_model
from .groups import default_example

Links = Mapping[str, tuple[str | None, int]]  # {input site: (producer layer or None, features per channel)}


__all__ = ["MIN_KEEP", "PER_MAC", "NORMALISATIONS", "CoupledLayersError", "floor_counts", "parse_architecture", "format_architecture", "keep_indices", "feasible_counts", "counts_for_mass", "normalise_scores", "counts_for_mass_budget", "counts_for_budget", "channel_costs"]

MIN_KEEP = 0.1  # the per-layer floor of every budget allocation: this share of each site's channels (module docstring)
# the MAC budget's default order: score per MAC of a channel (the posterior means' best order on LeNet-5,
# docs/results.md); the baselines' studies pass per_mac=False (their nearly flat scores empty the costliest layer)
PER_MAC = True


def floor_counts(sizes: Mapping[str, int], min_keep: float = MIN_KEEP) -> dict[str, int]:
    """``{site: max(1, ceil(min_keep * K))}``: the fewest channels a budget leaves each site."""
    if not 0 <= min_keep <= 1:
        raise ValueError(f"min_keep is the share of each layer's channels a budget must keep, in [0, 1]; got {min_keep}")
    return {name: min(k, max(1, math.ceil(min_keep * k - 1e-9))) for name, k in sizes.items()}


class CoupledLayersError(ValueError):
    """Pruning a layer would also remove output channels of other layers."""


def parse_architecture(
    text: str, sizes: Mapping[str, int], groups: Sequence[Sequence[str]] | None = None, links: Links | None = None
) -> dict[str, int]:
    """``"5-8-45-15"`` -> ``{site: count}`` for the sites of ``sizes`` (in order), 1 <= count <= K.

    With ``groups`` (e.g. a residual network's stages), one count per group is also
    accepted and applies to every layer of that group. With ``links``, an input site's
    count must lie in ``count_producer .. stride * count_producer`` (module docstring).
    """
    layers = list(sizes)
    try:
        counts = [int(part) for part in str(text).split("-")]
    except ValueError:
        raise ValueError(f"architecture {text!r} is not a dash-separated list of integers like '5-8-45-15'") from None
    if groups is not None and len(counts) == len(groups) != len(layers):
        counts = [count for count, group in zip(counts, groups) for _ in group]
    if len(counts) != len(layers):
        per_group = f" or one per group ({len(groups)})" if groups is not None else ""
        raise ValueError(f"architecture {text!r} has {len(counts)} counts but the network has {len(layers)} switched "
                         f"layers{per_group}: {layers}")
    for name, count in zip(layers, counts):
        if not 1 <= count <= sizes[name]:
            raise ValueError(f"architecture {text!r}: layer {name!r} keeps {count}, which is outside 1..{sizes[name]}")
    result = dict(zip(layers, counts))
    for site, (producer, stride) in (links or {}).items():
        if site in result and producer in result and not result[producer] <= result[site] <= stride * result[producer]:
            raise ValueError(
                f"architecture {text!r}: {site!r} keeps {result[site]} features, but the {result[producer]} channels "
                f"kept in {producer!r} give at most {stride * result[producer]} ({stride} each) and need at least "
                f"{result[producer]} (one each)")
    return result


def format_architecture(counts: Mapping[str, int]) -> str:
    return "-".join(str(int(c)) for c in counts.values())


def keep_indices(scores: Mapping[str, torch.Tensor], counts: Mapping[str, int],
                 links: Links | None = None) -> dict[str, list[int]]:
    """The ``counts[site]`` highest-scoring channels of each site, as sorted index lists.

    An input site linked to a switched producer keeps features of the producer's kept
    channels only: the best feature of each such channel, then the best of the rest.
    """
    linked = {site: link for site, link in (links or {}).items() if site in counts and link[0] in counts}
    keep = {name: sorted(torch.topk(scores[name], counts[name]).indices.tolist()) for name in counts
            if name not in linked}
    for site, (producer, stride) in linked.items():
        channels = torch.tensor(keep[producer])
        candidates = (channels[:, None] * stride + torch.arange(stride)).flatten()  # (C_kept * stride,)
        values = scores[site][candidates]
        if not len(channels) <= counts[site] <= len(candidates):
            raise ValueError(f"{site!r} keeps {counts[site]} features; the {len(channels)} kept channels of "
                             f"{producer!r} allow {len(channels)}..{len(candidates)}")
        best = values.reshape(len(channels), stride).argmax(1) + torch.arange(len(channels)) * stride
        rest = torch.ones(len(candidates), dtype=torch.bool)
        rest[best] = False
        others = torch.nonzero(rest).flatten()
        others = others[torch.argsort(values[others], descending=True, stable=True)][: counts[site] - len(channels)]
        keep[site] = sorted(candidates[torch.cat([best, others])].tolist())
    return {name: keep[name] for name in counts}


def feasible_counts(counts: Mapping[str, int], links: Links | None = None) -> dict[str, int]:
    """``counts`` with each linked input site's count clamped into ``count_p .. stride * count_p``."""
    counts = dict(counts)
    for site, (producer, stride) in (links or {}).items():
        if site in counts and producer in counts:
            counts[site] = min(max(counts[site], counts[producer]), stride * counts[producer])
    return counts


def counts_for_mass(scores: Mapping[str, torch.Tensor], mass: float) -> dict[str, int]:
    """Per layer, the fewest top channels whose posterior-mean mass reaches ``mass`` (0 < mass <= 1)."""
    if not 0 < mass <= 1:
        raise ValueError(f"posterior-mass threshold must be in (0, 1], got {mass}")
    counts = {}
    for name, s in scores.items():
        cumulative = torch.cumsum(torch.sort(s / s.sum(), descending=True).values, 0)
        counts[name] = min(int((cumulative < mass - 1e-12).sum()) + 1, len(s))
    return counts


NORMALISATIONS = ("mean", "l2", "none")


def normalise_scores(scores: Mapping[str, torch.Tensor], how: str = "mean") -> dict[str, torch.Tensor]:
    """Scores made comparable across sites, for one global ranking.

    ``mean``: ``s_lk / mean_k s_lk`` (for posterior means, which sum to 1, this is
    ``K_l E[s_lk]``; Torch-Pruning's default for norm importance); ``l2``:
    ``s_lk / ||s_l||_2`` (Molchanov et al. 2017); ``none``: as given.
    """
    if how not in NORMALISATIONS:
        raise ValueError(f"unknown score normalisation {how!r}; choose from {list(NORMALISATIONS)}")
    if how == "none":
        return dict(scores)
    out = {}
    for name, s in scores.items():
        scale = s.float().mean() if how == "mean" else s.float().norm()
        out[name] = s / scale if scale > 0 else s
    return out


def counts_for_mass_budget(scores: Mapping[str, torch.Tensor], budget_macs: int,
                           macs_of: Callable[[dict[str, int]], int], links: Links | None = None,
                           min_keep: float = MIN_KEEP) -> dict[str, int]:
    """Per-layer counts for the largest share ``m`` of each layer's score mass that fits
    ``budget_macs``: every layer keeps its fewest top channels holding ``m`` of its mass
    (:func:`counts_for_mass`), but at least its floor (:func:`floor_counts`), so a layer whose
    posterior is spread over many channels keeps many. Bisection over m (counts grow with m)."""
    floor = floor_counts({name: len(s) for name, s in scores.items()}, min_keep)

    def counts(m: float) -> dict[str, int]:
        return feasible_counts({name: max(c, floor[name]) for name, c in counts_for_mass(scores, m).items()}, links)

    if macs_of(counts(1.0)) <= budget_macs:
        return counts(1.0)
    least = 1e-12
    if macs_of(counts(least)) > budget_macs:
        raise ValueError(f"MAC budget {budget_macs:,} is below the smallest possible network "
                         f"({macs_of(counts(least)):,} MACs with every switched layer at its floor, "
                         f"min_keep={min_keep}); raise the budget or lower min_keep")
    return counts(largest_fitting(lambda m: macs_of(counts(m)) <= budget_macs, least))


def largest_fitting(fits: Callable[[float], bool], lo: float, hi: float = 1.0, steps: int = 50) -> float:
    """The largest ``x`` in ``[lo, hi]`` with ``fits(x)`` (true up to a point, and at ``lo``), by bisection."""
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


MAC_SHARES = tuple(i / 8 for i in range(9))  # the weights lambda tried when both budgets are given


def channel_costs(sizes: Mapping[str, int], count_of: Callable[[dict[str, int]], int]) -> dict[str, int]:
    """``{site: what one of its channels costs at full width}``: the drop of ``count_of`` (MACs or
    parameters of the network with those keep counts) when the site loses one channel, in its
    layers and in those that read it; at least 1."""
    full = count_of(dict(sizes))
    return {name: max(1, full - count_of({**sizes, name: sizes[name] - 1})) for name in sizes}


def counts_for_budget(
    net: nn.Module,
    scores: Mapping[str, torch.Tensor],
    budget_macs: int,
    example_inputs=None,
    macs_of: Callable[[dict[str, int]], int] | None = None,
    links: Links | None = None,
    normalisation: str | None = None,
    budget_params: int | None = None,
    per_mac: bool = PER_MAC,
    min_keep: float = MIN_KEEP,
) -> dict[str, int]:
    """Per-layer counts from the global order of the normalised scores that fit ``budget_macs``
    (and ``budget_params`` parameters, if given: :func:`~.counting.param_model`)
    (:func:`normalise_scores`). ``per_mac`` (default :data:`PER_MAC`): order by score per MAC, each site's
    normalised scores divided by the MACs one of its channels costs (:func:`channel_costs`): the
    greedy knapsack order. With ``budget_params`` too, the cost is ``lam dMACs / budget_macs +
    (1 - lam) dparams / budget_params`` (a Lagrangian weighting of the two budgets) for each
    ``lam`` in :data:`MAC_SHARES`, and the allocation that keeps the most normalised score wins: a
    fixed MAC order would spend a binding parameter budget on layers that are cheap in MACs and dear
    in parameters (VGG-16's fc1 and fc2 kept whole: docs/results.md). ``normalisation`` defaults to
    the scores' own (a criterion's
    ``ChannelScores.normalisation``: :mod:`.criteria`), else ``mean``, which ranks posterior means
    by ``K_l * E[s_lk]``.

    ``macs_of(counts)`` gives the MACs of the network with those keep counts (``per_mac`` also
    asks it for each site one channel down, links aside, so it must take any counts); by default
    :func:`~.counting.mac_model` (per-layer MACs scaled by kept channels, no trimming). After
    the binary search, removed channels are added back in descending score order while the
    budget allows, so the budget is used up as far as single channels can fill it. Counts
    are kept feasible for ``links`` (:func:`feasible_counts`). No site goes below its floor
    (:func:`floor_counts`, ``min_keep`` of its channels).
    """
    sizes = {name: len(s) for name, s in scores.items()}
    example = default_example(net, example_inputs)
    if macs_of is None:
        macs_of = mac_model(net, list(scores), example)
    params_of = param_model(net, list(scores), example) if budget_params is not None else None

    def fits(counts: dict[str, int]) -> bool:
        return macs_of(counts) <= budget_macs and (params_of is None or params_of(counts) <= budget_params)

    floor = floor_counts(sizes, min_keep)
    least = feasible_counts(floor, links)
    if not fits(least):
        raise ValueError(
            f"budget of {budget_macs:,} MACs{'' if params_of is None else f' and {budget_params:,} parameters'} is "
            f"below the smallest possible network ({macs_of(least):,} MACs"
            f"{'' if params_of is None else f', {params_of(least):,} parameters'} with every switched layer at its "
            f"floor, min_keep={min_keep} of its channels); raise the budget or lower min_keep")
    if fits(sizes):
        return dict(sizes)
    ranked = normalise_scores(scores, normalisation or getattr(scores, "normalisation", "mean"))

    def allocate(values: Mapping[str, torch.Tensor]) -> dict[str, int]:
        """Remove the shortest prefix of the ascending order of ``values`` that fits, then add back."""
        order = sorted(((float(v), name) for name, s in values.items() for v in s.tolist()), key=lambda t: t[0])

        def counts_after(removed: int) -> dict[str, int]:
            counts = dict(sizes)
            for _, name in order[:removed]:
                counts[name] = max(floor[name], counts[name] - 1)
            return feasible_counts(counts, links)

        lo, hi = 0, len(order)  # invariant: removing the first `hi` fits the budget (all layers at their floors)
        while lo < hi:
            mid = (lo + hi) // 2
            if fits(counts_after(mid)):
                hi = mid
            else:
                lo = mid + 1
        counts = counts_after(hi)
        for _, name in reversed(order[:hi]):
            if counts[name] < sizes[name]:
                grown = feasible_counts({**counts, name: counts[name] + 1}, links)
                if grown != counts and fits(grown):
                    counts = grown
        return counts

    if not per_mac:
        return allocate(ranked)
    macs = channel_costs(sizes, macs_of)
    if params_of is None:
        return allocate({name: s / macs[name] for name, s in ranked.items()})
    params = channel_costs(sizes, params_of)

    def kept_value(counts: dict[str, int]) -> float:  # the knapsack's objective: normalised scores kept
        return sum(float(torch.topk(ranked[name].float(), counts[name]).values.sum()) for name in counts)

    candidates = [allocate({name: s / (lam * macs[name] / budget_macs + (1 - lam) * params[name] / budget_params)
                            for name, s in ranked.items()}) for lam in MAC_SHARES]
    return max(candidates, key=kept_value)
