"""Removing the channels that are not kept, for real: a smaller dense network.

Trimming uses Torch-Pruning's dependency graph: a layer's removed output channels leave
the layer, its BatchNorm, every layer tied to it (a channel group, :mod:`.groups`: residual
sums, depthwise convs) and every consumer (conv -> flatten -> linear included). Two sites
of one group are refused, as is a group whose layers have different widths (Torch-Pruning
cannot match their channels). An input site's removed features leave
the layer's weight columns; the layer then reads only its kept features
(:class:`~.sites.InputSelect`), and a producer channel none of whose features is kept
leaves the producer as well. :func:`trim` checks the smaller network against the masked one
before it returns it.
"""
from __future__ import annotations

import copy
import numbers
from collections.abc import Mapping, Sequence

import torch
import torch.nn as nn
import torch_pruning as tp

from .allocation import CoupledLayersError
from .frozen import frozen, hooks
from .groups import default_example, dependency_graph, input_shape, switch_points
from .heads import head_layout, is_head_site, trim_heads
from .sites import LAYERS, InputSelect, channel_dim, is_input_site, layer_module, layer_width, site_layer, site_width


def _graph(net: nn.Module, example_inputs) -> tp.DependencyGraph:
    return dependency_graph(net, default_example(net, example_inputs))


def _out_handler(module: nn.Module):
    return tp.prune_linear_out_channels if isinstance(module, nn.Linear) else tp.prune_conv_out_channels


def _producer(graph: tp.DependencyGraph, module: nn.Linear, names: Mapping[nn.Module, str]) -> tuple[str | None, int]:
    """``(producer layer or None, features per producer channel)`` of a Linear layer's inputs."""
    group = graph.get_pruning_group(module, tp.prune_linear_in_channels, idxs=[0])
    producers = [dep.target.module for dep, _ in group
                 if isinstance(dep.target.module, LAYERS) and graph.is_out_channel_pruning_fn(dep.handler)]
    if not producers:
        return None, 1  # the network's input
    if len(producers) > 1:
        raise CoupledLayersError(f"the input features of {names[module]!r} come from several layers "
                                 f"({sorted(names[m] for m in producers)}, e.g. a residual sum); switch their outputs")
    return names[producers[0]], module.in_features // layer_width(producers[0])


def input_links(net: nn.Module, sites: Sequence[str], example_inputs=None) -> dict[str, tuple[str | None, int]]:
    """``{input site: (producer layer or None, features per producer channel)}`` (:mod:`.allocation`),
    from Torch-Pruning's dependency graph of ``net`` (:func:`.groups.dependency_graph`, shared)."""
    inputs = [site for site in sites if is_input_site(site)]
    if not inputs:
        return {}
    graph = _graph(net, example_inputs)
    names = {module: name for name, module in net.named_modules()}
    return {site: _producer(graph, layer_module(net, site_layer(site)), names) for site in inputs}


class TrimMismatchError(ValueError):
    """Trimming would not compute what the masked network computes (see :func:`trim`)."""


def trim(net: nn.Module, keep: Mapping[str, Sequence[int]], example_inputs=None,
         verify: bool = True, allow_output: bool = False) -> nn.Module:
    """A smaller dense copy of ``net`` keeping only ``keep[site]`` channels of each site.

    Output sites lose their other output channels; input sites their other input features
    (and producer channels none of whose features is kept; module docstring); head sites
    their other heads (:func:`.heads.trim_heads`). Works on the
    net's device; ``example_inputs`` (the shape of one input, or a batch of one tensor; default
    ``net.input_shape``) traces the graph.

    ``verify``: run the trimmed network and the masked one (``net`` with the removed channels
    zeroed wherever a switch would act, :mod:`.groups`, and the removed input features zeroed)
    on one random input, and raise :class:`TrimMismatchError` naming the site, its layers and
    the difference when they differ by more than ``1e-4`` of the output scale (e.g. a
    flatten that is not channel-major, a normalisation over the channels after the switch).
    Refused too: repeated or non-integer indices, and removing outputs of the network's output
    layer (its classes) unless ``allow_output``.
    """
    shape = input_shape(net, example_inputs)
    pruned, masks, outputs = _surgery(net, keep, shape, allow_output)
    if verify:
        difference, scale = _masked_difference(net, pruned, masks, shape, outputs)
        if not difference <= 1e-4 * scale:
            if len(keep) > 1:  # name the site that breaks it
                for site in keep:
                    trim(net, {site: keep[site]}, shape, allow_output=allow_output)
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
    pruned = _copy(net).eval().requires_grad_(True)  # trainable, for fine-tuning
    graph = _graph(pruned, input_shape)
    names = {module: name for name, module in pruned.named_modules()}
    removed: dict[str, set[int]] = {}  # output channels to remove, per layer
    selections = []  # (layer, kept input features, producer, stride)
    head_sites = {}  # head site: kept heads
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
        if is_head_site(site):
            head_sites[site] = kept
            continue
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
    for site, kept in head_sites.items():  # last: Torch-Pruning's graph of the copy is not needed after this
        layout = head_layout(pruned, site)
        if len(kept) < layout.size:
            masks[(layout.out_proj, True)] = trim_heads(pruned, layout, kept)
    return pruned, masks, outputs


def _copy(net: nn.Module) -> nn.Module:
    """A deep copy of ``net``; a tensor a module keeps outside its parameters and buffers that autograd
    made (e.g. LeViT's ``attention_bias_cache``, filled by the trace) is copied detached."""
    memo = {}
    for module in net.modules():
        for value in vars(module).values():
            for tensor in value.values() if isinstance(value, dict) else (value,):
                if isinstance(tensor, torch.Tensor) and not tensor.is_leaf:
                    memo[id(tensor)] = tensor.detach().clone()
    return copy.deepcopy(net, memo)


def _is_output(graph: tp.DependencyGraph, module: nn.Module) -> bool:
    """Whether no conv/linear layer reads ``module``'s output channels (the network's outputs)."""
    group = graph.get_pruning_group(module, _out_handler(module), idxs=[0])
    return not any(isinstance(dep.target.module, LAYERS) and not graph.is_out_channel_pruning_fn(dep.handler)
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
        shape[channel_dim(module)] = -1
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
              if isinstance(dep.target.module, LAYERS) and graph.is_out_channel_pruning_fn(dep.handler)}
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
                     if isinstance(dep.target.module, LAYERS) and graph.is_out_channel_pruning_fn(dep.handler))
