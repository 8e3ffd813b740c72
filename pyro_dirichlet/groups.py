"""Coupled channels: the groups of layers whose output channels must be removed together.

Torch-Pruning's dependency graph gives the groups: the convs whose outputs meet in a residual
sum, a depthwise conv and the layer that produces its input, a layer and its BatchNorm. One
Dirichlet switch serves a whole group (``K`` = the group's channel count). It is named after
the group's first conv/linear member in the network's module order, so naming any member,
or several, selects the same switch.

Where the switch acts (``points``): the output of every BatchNorm in the group, of every
module with a pruner of its own (``channel_map.CUSTOM_PRUNERS``, e.g. the ``ChannelScatter``
shortcut) that writes its channels, and of every
conv/linear member whose output does not go straight into one of those BatchNorms. So channel
k of the group is multiplied by the switch wherever it is produced or re-normalised, and a
zero switch removes it exactly (a BatchNorm's shift cannot bring it back). A group whose
channels no layer reads (the logits layer) is the network's output: pruning it drops
classes, so it is refused unless asked for. A group with a LayerNorm or GroupNorm over its
channels (a transformer's or ConvNeXt's residual stream) is flagged (``problem``): the
normalisation renormalises what the switch scaled, so no switch there removes channels exactly.
"""
from __future__ import annotations

from collections.abc import Sequence
import weakref
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch_pruning as tp

from .channel_map import CUSTOM_PRUNERS
from .graph import LAYERS, all_groups, dependency_graph, graph_key, kept_graph, uncached  # noqa: F401 (uncached: the graph module's switch)
from .group_checks import (_split_by, _is_grouped, _out_channels, _reads_channel_major,  # noqa: F401
                           _untraced_norms_reading, renormalises)
from .heads import head_points
from .sites import layer_width



__all__ = ["ChannelGroup", "channel_groups", "switch_points", "default_example"]

@dataclass(frozen=True)
class ChannelGroup:
    name: str  # the first conv/linear member in module order
    size: int  # K, the channels that go together
    members: tuple[str, ...]  # conv/linear layers whose output channels are the group's
    readers: tuple[str, ...]  # conv/linear layers whose input channels are the group's
    points: tuple[str, ...]  # modules whose outputs the switch multiplies
    is_output: bool  # no layer reads these channels: the network's outputs
    problem: str | None = None  # why the group cannot be pruned, if it cannot
    reads: tuple[int, ...] = ()  # input channels each reader takes from the group (K per copy, K x positions after a flatten)
    parameters: tuple[str, ...] = ()  # other parameters pruned with its channels: BatchNorms', LayerScale gammas, ...


def switch_points(graph: tp.DependencyGraph, outs: Sequence[nn.Module], names: dict[nn.Module, str]) -> set[str]:
    """Names of the modules whose outputs a group's switch multiplies (module docstring), from
    the modules ``outs`` whose output channels are the group's."""
    norms = {m for m in outs if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    points = {names[m] for m in norms}
    points |= {names[m] for m in outs if isinstance(m, tuple(CUSTOM_PRUNERS))}  # e.g. a shortcut writing them
    for module in outs:
        if isinstance(module, LAYERS):
            following = [node.module for node in graph.module2node[module].outputs]
            if not (len(following) == 1 and following[0] in norms):
                points.add(names[module])
    return points


# net: (graph key, groups), traced (every call's, so a bounded grouping is the same for all) and checked
_TRACED: "weakref.WeakKeyDictionary[nn.Module, tuple]" = weakref.WeakKeyDictionary()
_CHECKED: "weakref.WeakKeyDictionary[nn.Module, tuple]" = weakref.WeakKeyDictionary()


def channel_groups(net: nn.Module, example_inputs, check: bool = True) -> list[ChannelGroup]:
    """Every group of output channels of ``net``'s conv/linear layers (module docstring).

    ``check``: trim every candidate group once (:func:`.trim_trial.untrimmable`, one tensor example),
    so that a group whose trimming cannot run or match carries its ``problem`` now, before any fit.
    The groups are kept until the network, its parameters or the example change, so that every
    caller (the sites, the MAC and parameter models) sees one grouping, also where a layer's grouping
    passed its time bound (:func:`.graph.all_groups`)."""
    graph = dependency_graph(net, example_inputs)
    key = graph_key(net, example_inputs)
    if check and net in _CHECKED and _CHECKED[net][0] == key:
        return list(_CHECKED[net][1])
    if net not in _TRACED or _TRACED[net][0] != key:
        _TRACED[net] = (key, _traced_groups(net, example_inputs, graph))
    groups = list(_TRACED[net][1])
    if not check:
        return groups
    if isinstance(example_inputs, torch.Tensor) and example_inputs.is_floating_point():
        from .trim_trial import untrimmable  # it trims, and trimming reads the groups' switch points
        with kept_graph():  # the trial's copies are traced too; the network's own graph stays the one held
            failing = untrimmable(net, {g.name: g.size for g in groups if g.problem is None and not g.is_output},
                                  example_inputs)
        groups = [replace(g, problem=f"trimming it (channel 0 removed) was tried when the groups were built and "
                                     f"failed: {failing[g.name]}. Switch other layers") if g.name in failing else g
                  for g in groups]
    _CHECKED[net] = (key, groups)
    return list(groups)


def _traced_groups(net: nn.Module, example_inputs, graph: tp.DependencyGraph) -> list[ChannelGroup]:
    """The groups as Torch-Pruning's graph gives them, with the problems known from their structure."""
    names = {module: name for name, module in net.named_modules()}
    order = {name: i for i, name in enumerate(names.values())}
    parameter_names = {id(p): name for name, p in net.named_parameters()}
    heads = head_points(net)
    # a head's q/k/v rows are never a site (switch the heads instead), and Torch-Pruning does not
    # finish grouping them through grouped-query attention's repeat_kv (Llama): not roots, only
    # refused below; as readers of the residual stream they are in its group as ever
    head_rows = [net.get_submodule(name) for name in heads]
    groups = [ChannelGroup(name, layer_width(net.get_submodule(name)), (name,), (), (), False,
                           f"its channels are attention heads' ({name!r}): removing single channels would break the "
                           f"heads apart; switch the heads instead: {[site]}") for name, site in heads.items()]
    untraced = [m for m in names if renormalises(m) and m not in graph.module2node]  # e.g. LlamaRMSNorm
    for root, group, too_large in all_groups(graph, head_rows):
        if group is None:
            groups.append(ChannelGroup(names[root], layer_width(root), (names[root],), (), (), False,
                                       f"Torch-Pruning's grouping of its channels did not finish within a bound "
                                       f"({too_large}): the graph's index mappings grow without end (e.g. reshapes "
                                       "of a large input). Trace with a smaller example input (fewer pixels or "
                                       "tokens), or switch other layers"))
            continue
        outs = [dep.target.module for dep, _ in group if graph.is_out_channel_pruning_fn(dep.handler)]
        readers = [dep.target.module for dep, _ in group
                   if isinstance(dep.target.module, LAYERS) and not graph.is_out_channel_pruning_fn(dep.handler)]
        members = sorted({names[m] for m in outs if isinstance(m, LAYERS)}, key=order.get)
        points = switch_points(graph, outs, names)
        widths = {name: layer_width(net.get_submodule(name)) for name in members}
        problem = None
        renormalising = sorted({names[dep.target.module] for dep, _ in group
                                if renormalises(dep.target.module)}, key=order.get)
        if not renormalising and untraced:
            renormalising = [names[m] for m in _untraced_norms_reading(net, example_inputs, sorted(points, key=order.get),
                                                                      widths[members[0]], untraced)]
        if renormalising:
            problem = (f"a normalisation over its channels ({renormalising}) renormalises what the switch scaled, so "
                       "a zero switch does not remove a channel there and trimming would not equal the masked network; "
                       "switch other groups (e.g. the MLP units of a block)")
        size = widths[members[0]]
        concatenated = sorted({names[dep.target.module] for dep, idxs in group if dep.target.module in names
                               and graph.is_out_channel_pruning_fn(dep.handler)
                               and ([int(i) for i in idxs] != list(range(size))
                                    or _out_channels(graph, dep.target.module) not in (None, size))}, key=order.get)
        if concatenated:
            problem = (f"its channels are concatenated with others (torch.cat, e.g. DenseNet) before "
                       f"{concatenated[:3]}, which normalise or read them among other channels: a switch over those "
                       "layers' channel slices is not supported yet, so no switch here would remove a channel "
                       "exactly; switch layers whose outputs are not concatenated")
        flattened = [m for m in readers if isinstance(m, nn.Linear) and m.in_features != size
                     and m.in_features % size == 0]
        for reader in flattened if len(set(widths.values())) == 1 and not concatenated else []:  # else refused
            if not _reads_channel_major(net, example_inputs, sorted(points, key=order.get), reader, size):
                problem = (f"{names[reader]!r} reads its channels in another order than channel-major (e.g. a "
                           "permute before the flatten), so removing a channel's features by position would remove "
                           "the wrong ones; switch the Linear layer's own units instead")
        splits = {names[m]: why for m in outs if isinstance(m, LAYERS) and (why := _split_by(graph, m))}
        fixed = {layer: why for layer, why in splits.items() if why.startswith("split at")}
        if fixed:
            layer, why = next(iter(fixed.items()))
            problem = (f"the outputs of {layer!r} are {why} (torch.split / chunk into parts of fixed sizes, e.g. "
                       "Res2Net's scales, ShuffleNet's halves): removing channels would move others from one part to "
                       "the next, which Torch-Pruning's surgery does not follow; switch layers whose outputs are not split")
        elif splits:
            layer, why = next(iter(splits.items()))
            problem = (f"the outputs of {layer!r} pass through {why}, a value and a gate half (channel k is "
                       f"gated by channel k + {size // 2}): a switch on one channel does not remove it, and pairing "
                       "the halves is not supported. Write the gate as two layers, value * sigmoid(gate) with value and gate "
                       "convs (or Linears) of C channels each: the product ties their channels into one prunable group "
                       "(examples/sequence_model.py); or switch the layer that reads the gated output")
        grouped = [names[m] for m in (*outs, *readers) if _is_grouped(m)]
        if grouped:
            conv = net.get_submodule(grouped[0])
            problem = (f"{grouped[0]!r} is a grouped convolution (groups={conv.groups}, {conv.in_channels // conv.groups} "
                       "input channels a group): removing single channels would break its groups apart, and pruning "
                       "whole groups is not supported; switch other layers (e.g. the block's output or its 1x1 convs "
                       "that no grouped convolution reads)")
        if len(set(widths.values())) > 1:
            problem = (f"its layers {members} have different widths ({sorted(set(widths.values()))}) although "
                       "Torch-Pruning ties their channels (e.g. a shortcut that zero-pads channels with F.pad, "
                       "ResNet option A): their channels cannot be matched one to one. Write such a shortcut as "
                       "pyro_dirichlet.ChannelScatter.zero_padding(in_channels, out_channels)")
        read: dict[str, set[int]] = {}  # reader -> its input channels that are the group's (a concatenation: copies)
        for dep, idxs in group:
            if isinstance(dep.target.module, LAYERS) and not graph.is_out_channel_pruning_fn(dep.handler):
                read.setdefault(names[dep.target.module], set()).update(int(i) for i in idxs)
        reader_names = tuple(sorted(read, key=order.get))
        owned = set()  # parameters other than the members' own that Torch-Pruning prunes with the channels
        for dep, _ in group:
            target = dep.target.module
            if not graph.is_out_channel_pruning_fn(dep.handler) or isinstance(target, LAYERS):
                continue
            if isinstance(target, nn.Parameter):
                owned.add(parameter_names[id(target)])
            elif target in names:
                owned.update(f"{names[target]}.{n}" for n, _ in target.named_parameters(recurse=False))
        groups.append(ChannelGroup(members[0], widths[members[0]], tuple(members), reader_names,
                                   tuple(sorted(points, key=order.get)), is_output=not readers, problem=problem,
                                   reads=tuple(len(read[r]) for r in reader_names), parameters=tuple(sorted(owned))))
    return sorted(groups, key=lambda g: order[g.name])


def resolve_layers(groups: Sequence[ChannelGroup], layers: Sequence[str], allow_output: bool = False) -> list[str]:
    """The group names of ``layers`` (conv/linear layer names), in order, each group once.

    Raises a ValueError for the network's output layer unless ``allow_output``.
    """
    by_member = {member: g for g in groups for member in g.members}
    resolved: list[str] = []
    for layer in layers:
        group = by_member.get(layer)
        if group is None:
            raise ValueError(f"{layer!r} is not a conv/linear layer the forward pass reaches; "
                             f"prunable layers: {sorted(by_member)}")
        if group.problem:
            raise ValueError(f"{layer!r} cannot be pruned: {group.problem}")
        if group.is_output and not allow_output:
            raise ValueError(f"{layer!r} is the network's output layer: no layer reads its {group.size} channels, "
                             "so pruning it would drop outputs (classes). Switch an earlier layer or its input "
                             f"features ({layer + ':in'!r}), or pass allow_output=True if you mean it")
        if group.name not in resolved:
            resolved.append(group.name)
    return resolved


def default_example(net: nn.Module, example_inputs=None):
    """One batch for ``net``, from ``example_inputs`` as every API takes it: a batch (a tensor, or a
    tuple / dict of forward arguments) as it is; the shape of one input (a sequence of ints, no
    batch dim) as one zero input; None as one zero input of ``net.input_shape`` (the zoo's
    networks have one). Zero inputs take the net's dtype and device."""
    shape = example_inputs if is_shape(example_inputs) else None
    if example_inputs is not None and shape is None:
        return example_inputs
    shape = shape if shape is not None else getattr(net, "input_shape", None)
    if shape is None:
        raise ValueError("pass example_inputs= (one batch of your inputs, a tuple / dict of forward arguments, or "
                         "the shape of one input): the network is traced once to find the channels that go together")
    weight = next(net.parameters())
    return torch.zeros(1, *shape, dtype=weight.dtype, device=weight.device)


def is_shape(value) -> bool:
    return isinstance(value, (tuple, list, torch.Size)) and all(isinstance(d, int) for d in value) and len(value) > 0


def input_shape(net: nn.Module, example_inputs=None) -> tuple[int, ...]:
    """The shape of one input (no batch dim) of a network of one tensor input (module docstring
    of :func:`default_example`); a network of other arguments is refused."""
    example = default_example(net, example_inputs)
    if not isinstance(example, torch.Tensor):
        raise ValueError(f"this step makes its own inputs of one tensor's shape; the network takes "
                         f"{type(example).__name__} arguments: wrap it in a module whose forward(x) takes one tensor")
    return tuple(example.shape[1:])
