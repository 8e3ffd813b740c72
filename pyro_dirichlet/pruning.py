"""Choosing how many channels to keep, and removing the others for real.

Keep counts come from (a) an architecture string ``"5-8-45-15"`` (one count per switched
site, in order), (b) a MAC budget, or (c) a posterior-mass threshold per layer. Within a
site the channels with the highest scores (posterior means) are kept.

Input sites (``"fc1:in"``, :mod:`.sites`) are linked to the layer that produces their
features (:func:`input_links`): feature f belongs to producer channel ``f // stride``
(``stride`` features per channel, 16 for LeNet-5's conv2 -> flatten -> fc1). When the
producer is switched too, an input site keeps between one and ``stride`` features of each
kept producer channel (so ``count_in <= stride * count_producer``), and at least the best
feature of each, so no kept producer channel is left without a reader.

MAC budget: channels are ordered globally by ``K_l * E_q[s_lk]`` (1 for every channel
under the uniform switch, so layers compare), and the longest prefix of that order whose
removal (keeping at least one channel per layer) brings the network within the budget is
removed; binary search over the prefix length, since MACs fall as channels go.

Per-layer floor: every budget allocation keeps at least ``ceil(min_keep * K_l)`` (and at
least one) of each site's K_l channels, ``min_keep = MIN_KEEP = 0.1`` by default (Torch-Pruning's
``max_pruning_ratio=0.9``): one channel is no floor, a layer cut to 1 of 16 ruins a network.
An architecture string is taken as given.

Trimming uses Torch-Pruning's dependency graph: a layer's removed output channels leave
the layer, its BatchNorm, every layer tied to it (a channel group, :mod:`.groups`: residual
sums, depthwise convs) and every consumer (conv -> flatten -> linear included). Two sites
of one group are refused, as is a group whose layers have different widths (Torch-Pruning
cannot match their channels). An input site's removed features leave
the layer's weight columns; the layer then reads only its kept features
(:class:`~.sites.InputSelect`), and a producer channel none of whose features is kept
leaves the producer as well.
"""
from __future__ import annotations

import copy
import math
import numbers
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
import torch.nn as nn
import torch_pruning as tp

from .counting import mac_model, param_model
from .frozen import frozen, hooks
from .groups import dependency_graph, switch_points
from .io import CheckpointError, atomic_write, load_json, load_torch, save_json
from .sites import InputSelect, is_input_site, layer_module, layer_width, site_layer, site_width

Links = Mapping[str, tuple[str | None, int]]  # {input site: (producer layer or None, features per channel)}


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


def counts_for_budget(
    net: nn.Module,
    scores: Mapping[str, torch.Tensor],
    budget_macs: int,
    input_shape: Sequence[int],
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
    normalised scores divided by the MACs one of its channels costs at full width, in its
    layers and in those that read it (``macs_of(all) - macs_of(all but one of its channels)``):
    the greedy knapsack order. ``normalisation`` defaults to the scores' own (a criterion's
    ``ChannelScores.normalisation``: :mod:`.criteria`), else ``mean``, which ranks posterior means
    by ``K_l * E[s_lk]``.

    ``macs_of(counts)`` gives the MACs of the network with those keep counts; by default
    :func:`~.counting.mac_model` (per-layer MACs scaled by kept channels, no trimming). After
    the binary search, removed channels are added back in descending score order while the
    budget allows, so the budget is used up as far as single channels can fill it. Counts
    are kept feasible for ``links`` (:func:`feasible_counts`). No site goes below its floor
    (:func:`floor_counts`, ``min_keep`` of its channels).
    """
    sizes = {name: len(s) for name, s in scores.items()}
    weight = next(net.parameters())
    example = torch.zeros(1, *input_shape, dtype=weight.dtype, device=weight.device)
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
    if per_mac:
        full = macs_of(sizes)
        ranked = {name: s / max(1, full - macs_of(feasible_counts({**sizes, name: sizes[name] - 1}, links)))
                  for name, s in ranked.items()}
    order = sorted(((float(v), name) for name, s in ranked.items() for v in s.tolist()), key=lambda t: t[0])

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


def _graph(net: nn.Module, input_shape: Sequence[int]) -> tp.DependencyGraph:
    return dependency_graph(net, torch.zeros(1, *input_shape, device=next(net.parameters()).device))


def _out_handler(module: nn.Module):
    return tp.prune_conv_out_channels if isinstance(module, nn.Conv2d) else tp.prune_linear_out_channels


def _producer(graph: tp.DependencyGraph, module: nn.Linear, names: Mapping[nn.Module, str]) -> tuple[str | None, int]:
    """``(producer layer or None, features per producer channel)`` of a Linear layer's inputs."""
    group = graph.get_pruning_group(module, tp.prune_linear_in_channels, idxs=[0])
    producers = [dep.target.module for dep, _ in group
                 if isinstance(dep.target.module, (nn.Conv2d, nn.Linear)) and graph.is_out_channel_pruning_fn(dep.handler)]
    if not producers:
        return None, 1  # the network's input
    if len(producers) > 1:
        raise CoupledLayersError(f"the input features of {names[module]!r} come from several layers "
                                 f"({sorted(names[m] for m in producers)}, e.g. a residual sum); switch their outputs")
    return names[producers[0]], module.in_features // layer_width(producers[0])


def input_links(net: nn.Module, sites: Sequence[str], input_shape: Sequence[int]) -> dict[str, tuple[str | None, int]]:
    """``{input site: (producer layer or None, features per producer channel)}`` (module docstring),
    from Torch-Pruning's dependency graph of a copy of ``net``."""
    inputs = [site for site in sites if is_input_site(site)]
    if not inputs:
        return {}
    copy_ = copy.deepcopy(net).eval()
    graph = _graph(copy_, input_shape)
    names = {module: name for name, module in copy_.named_modules()}
    return {site: _producer(graph, layer_module(copy_, site_layer(site)), names) for site in inputs}


class TrimMismatchError(ValueError):
    """Trimming would not compute what the masked network computes (see :func:`trim`)."""


def trim(net: nn.Module, keep: Mapping[str, Sequence[int]], input_shape: Sequence[int],
         verify: bool = True, allow_output: bool = False) -> nn.Module:
    """A smaller dense copy of ``net`` keeping only ``keep[site]`` channels of each site.

    Output sites lose their other output channels; input sites their other input features
    (and producer channels none of whose features is kept; module docstring). Works on the
    net's device; ``input_shape`` (no batch dim) is used to trace the graph.

    ``verify``: run the trimmed network and the masked one (``net`` with the removed channels
    zeroed wherever a switch would act, :mod:`.groups`, and the removed input features zeroed)
    on one random input, and raise :class:`TrimMismatchError` naming the site, its layers and
    the difference when they differ by more than ``1e-4`` of the output scale (e.g. a
    flatten that is not channel-major, a normalisation over the channels after the switch).
    Refused too: repeated or non-integer indices, and removing outputs of the network's output
    layer (its classes) unless ``allow_output``.
    """
    pruned, masks, outputs = _surgery(net, keep, input_shape, allow_output)
    if verify:
        difference, scale = _masked_difference(net, pruned, masks, input_shape, outputs)
        if not difference <= 1e-4 * scale:
            if len(keep) > 1:  # name the site that breaks it
                for site in keep:
                    trim(net, {site: keep[site]}, input_shape, allow_output=allow_output)
            raise TrimMismatchError(
                f"trimming {sorted(keep)} does not compute what the masked network computes: outputs differ by "
                f"{difference:.3g} on a scale of {scale:.3g} (masked at {sorted(n for n, _ in masks)}). The removed channels still "
                "reach the output another way (e.g. a normalisation over the channels after the switch, or a "
                "reshape that is not channel-major); prune other layers, or remove these channels by hand")
    return pruned


def _surgery(net: nn.Module, keep: Mapping[str, Sequence[int]], input_shape: Sequence[int], allow_output: bool
             ) -> tuple[nn.Module, dict[tuple[str, bool], torch.Tensor], list[int] | None]:
    """The trimmed copy of ``net``, ``{(module, is_input): channel mask}`` of the masked network,
    and the kept outputs of the output layer if it is trimmed (else None)."""
    pruned = copy.deepcopy(net).eval().requires_grad_(True)  # trainable, for fine-tuning
    graph = _graph(pruned, input_shape)
    names = {module: name for name, module in pruned.named_modules()}
    removed: dict[str, set[int]] = {}  # output channels to remove, per layer
    selections = []  # (layer, kept input features, producer, stride)
    outputs = None
    for site, kept in keep.items():
        width = site_width(pruned, site)
        kept = kept.tolist() if isinstance(kept, torch.Tensor) else list(kept)
        if not all(isinstance(k, numbers.Integral) and not isinstance(k, bool) for k in kept):
            raise ValueError(f"site {site!r}: kept channels must be integer indices, got {kept[:8]}")
        if not kept or min(kept) < 0 or max(kept) >= width or len(set(kept)) != len(kept):
            raise ValueError(f"site {site!r}: kept channels must be a non-empty subset of 0..{width - 1} without "
                             f"repeats, got {len(kept)} indices ({len(set(kept))} distinct)")
        kept = sorted(int(k) for k in kept)
        layer = site_layer(site)
        if not is_input_site(site):
            if len(kept) < width and _is_output(graph, layer_module(pruned, layer)):
                if not allow_output:
                    raise ValueError(f"{site!r} is the network's output layer: trimming it drops {width - len(kept)} "
                                     f"of its {width} outputs (classes). Trim an earlier layer, or pass "
                                     "allow_output=True if you mean it")
                outputs = kept
            removed.setdefault(layer, set()).update(set(range(width)) - set(kept))
            continue
        producer, stride = _producer(graph, layer_module(pruned, layer), names)
        if producer is not None:
            dead = set(range(width // stride)) - {f // stride for f in kept}
            removed.setdefault(producer, set()).update(dead)
        selections.append((layer, kept, producer, stride))
    seen: dict[frozenset, str] = {}
    for layer in removed:
        key = _group_key(graph, layer_module(pruned, layer))
        if key in seen:
            raise ValueError(f"{seen[key]!r} and {layer!r} are one channel group (their channels are pruned "
                             "together); give one of them")
        seen[key] = layer
    masks: dict[tuple[str, bool], torch.Tensor] = {}  # where the masked network zeroes what trimming removes
    for layer, kept, _, _ in selections:
        mask = torch.zeros(site_width(pruned, layer + ":in"))
        mask[kept] = 1.0
        masks[(layer, True)] = mask
    for layer, channels in removed.items():
        if channels:
            module = layer_module(pruned, layer)
            mask = torch.ones(layer_width(module))
            mask[sorted(channels)] = 0.0
            masks.update({(point, False): mask for point in _prune_outputs(graph, module, sorted(channels), names)})
    for layer, kept, producer, stride in selections:
        gone = removed.get(producer, set())
        survivors = [c for c in range(layer_module(net, layer).in_features // stride) if c not in gone]
        position = {c: i for i, c in enumerate(survivors)}
        local = [position[f // stride] * stride + f % stride for f in kept if f // stride in position]
        linear = layer_module(pruned, layer)
        if len(local) < linear.in_features:
            tp.prune_linear_in_channels(linear, sorted(set(range(linear.in_features)) - set(local)))
            pruned.set_submodule(layer, InputSelect(linear, local))
    return pruned, masks, outputs


def _is_output(graph: tp.DependencyGraph, module: nn.Module) -> bool:
    """Whether no conv/linear layer reads ``module``'s output channels (the network's outputs)."""
    group = graph.get_pruning_group(module, _out_handler(module), idxs=[0])
    return not any(isinstance(dep.target.module, (nn.Conv2d, nn.Linear)) and not graph.is_out_channel_pruning_fn(dep.handler)
                   for dep, _ in group)


@torch.no_grad()
def _masked_difference(net: nn.Module, pruned: nn.Module, masks: Mapping[tuple[str, bool], torch.Tensor],
                       input_shape: Sequence[int], outputs: list[int] | None = None) -> tuple[float, float]:
    """``(max |trimmed - masked|, max(|masked|, 1e-3))`` of the outputs (the kept ``outputs`` of a
    trimmed output layer) on one seeded random input."""
    weight = next(net.parameters())
    x = torch.randn(1, *input_shape, generator=torch.Generator().manual_seed(0)).to(weight)

    def scale(module, x, mask):
        shape = [1] * x.dim()
        shape[-1 if isinstance(module, nn.Linear) else 1] = -1  # a Linear's features are last; conv/BN: (B, C, ...)
        return x * mask.to(x).reshape(shape)

    with hooks([net.get_submodule(name).register_forward_pre_hook(
                    lambda m, args, mask=mask: (scale(m, args[0], mask), *args[1:])) if is_input else
                net.get_submodule(name).register_forward_hook(lambda m, args, out, mask=mask: scale(m, out, mask))
                for (name, is_input), mask in masks.items()]), frozen(net), frozen(pruned):
        masked = net(x).float()
        try:
            trimmed = pruned(x).float()
        except RuntimeError as e:  # e.g. a reshape into heads that the removed channels no longer fill
            raise TrimMismatchError(f"the trimmed network does not run ({type(e).__name__}: {e}); the channels kept "
                                    f"at {sorted(n for n, _ in masks)} do not fit a layer that reads them (e.g. "
                                    "attention heads): keep whole heads, or prune other layers") from e
    if outputs is not None:
        masked = masked[..., outputs]
    return float((trimmed - masked).abs().max()), max(float(masked.abs().max()), 1e-3)


def _prune_outputs(graph: tp.DependencyGraph, module: nn.Module, channels: list[int],
                   names: Mapping[nn.Module, str]) -> set[str]:
    """Remove output ``channels`` of ``module`` from its channel group (every layer whose
    channels are tied to them, :mod:`.groups`) and from every layer that reads them; returns
    the group's switch points (:func:`.groups.switch_points`)."""
    group = graph.get_pruning_group(module, _out_handler(module), idxs=channels)
    outs = [dep.target.module for dep, _ in group if graph.is_out_channel_pruning_fn(dep.handler)]
    points = switch_points(graph, outs, names)
    widths = {names[dep.target.module]: layer_width(dep.target.module) for dep, _ in group
              if isinstance(dep.target.module, (nn.Conv2d, nn.Linear)) and graph.is_out_channel_pruning_fn(dep.handler)}
    if len(set(widths.values())) > 1:
        raise CoupledLayersError(
            f"layer {names[module]!r} cannot be pruned: Torch-Pruning ties its channels to layers of other widths "
            f"({widths}; e.g. a shortcut that zero-pads channels with F.pad), so they cannot be matched one to one. "
            "Write such a shortcut as pyro_dirichlet.ChannelScatter.zero_padding(in_channels, out_channels)"
        )
    group.prune()
    return points


def _group_key(graph: tp.DependencyGraph, module: nn.Module) -> frozenset[nn.Module]:
    """The conv/linear layers whose output channels go with ``module``'s."""
    group = graph.get_pruning_group(module, _out_handler(module), idxs=[0])
    return frozenset(dep.target.module for dep, _ in group
                     if isinstance(dep.target.module, (nn.Conv2d, nn.Linear)) and graph.is_out_channel_pruning_fn(dep.handler))


def save_pruned(net: nn.Module, spec: dict, folder: str | os.PathLike) -> None:
    """Write ``model.pt`` (state_dict) and ``spec.json`` (``{"model", "model_kwargs", "input_shape",
    "kept": {layer: [indices]}, "architecture", ...}``) into ``folder``, each atomically."""
    folder = Path(folder)
    atomic_write(folder / "model.pt", lambda tmp: torch.save(net.state_dict(), tmp))
    save_json(spec, folder / "spec.json")


def load_pruned(folder: str | os.PathLike, build: Callable[[], nn.Module] | None = None,
                device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a pruned network: the full network (from ``build`` or the zoo by ``spec["model"]``),
    trimmed to the saved channel indices, then the saved weights loaded."""
    folder = Path(folder)
    spec = load_json(folder / "spec.json")
    if build is None:
        from pyro_dirichlet.models import build_model

        full = build_model(spec["model"], **spec.get("model_kwargs", {}))
    else:
        full = build()
    pruned = trim(full.to(device), spec["kept"], spec["input_shape"])
    try:
        pruned.load_state_dict(load_torch(folder / "model.pt", map_location=device))
    except RuntimeError as e:
        raise CheckpointError(f"{folder / 'model.pt'} does not match {folder / 'spec.json'}: {e}") from e
    return pruned.eval(), spec
