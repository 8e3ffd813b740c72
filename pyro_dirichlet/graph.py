"""Torch-Pruning's dependency graph of a network, traced once and reused while the network,
its parameters and the example inputs stay the same (as Torch-Pruning's pruners keep their ``DG``)."""
from __future__ import annotations

import contextlib
import hashlib
import time

import torch
import torch.nn as nn
import torch_pruning as tp

from .channel_map import CUSTOM_PRUNERS
from .frozen import frozen
from .sites import LAYERS


_LAST: list = []  # [(net, key, graph)] of the last traced network: one, so none is kept alive for long
_CACHING = [True]


@contextlib.contextmanager
def uncached():
    """Within the block every :func:`dependency_graph` call traces the network anew (for benchmarks)."""
    _CACHING.append(False)
    try:
        yield
    finally:
        _CACHING.pop()


def _inputs_key(inputs):
    if isinstance(inputs, torch.Tensor):
        data = inputs.detach().cpu().contiguous()
        return tuple(inputs.shape), str(inputs.dtype), str(inputs.device), hashlib.sha1(
            data.view(torch.uint8).numpy().tobytes() if data.numel() else b"").hexdigest()
    if isinstance(inputs, dict):
        return tuple((k, _inputs_key(v)) for k, v in sorted(inputs.items()))
    if isinstance(inputs, (tuple, list)):
        return tuple(_inputs_key(v) for v in inputs)
    return repr(inputs)


def graph_key(net: nn.Module, example_inputs) -> tuple:
    """What the graph depends on: the modules (their identity, the graph holds them) and their
    parameters' shapes, every parameter's in-place version (a training or pruning step changes
    it) and the example inputs."""
    structure = tuple((name, id(m), tuple(tuple(p.shape) for p in m.parameters(recurse=False)))
                      for name, m in net.named_modules())
    return structure, tuple(p._version for p in net.parameters()), _inputs_key(example_inputs)


@contextlib.contextmanager
def kept_graph():
    """Within the block graphs are traced as ever; after it the graph held before is held again."""
    held = list(_LAST)
    try:
        yield
    finally:
        _LAST[:] = held


def dependency_graph(net: nn.Module, example_inputs) -> tp.DependencyGraph:
    """Torch-Pruning's graph of ``net`` (traced through autograd, in eval mode; ``net`` is left
    as found). ``example_inputs``: a tensor, or a tuple / dict of forward arguments.

    Built once per network, as Torch-Pruning's pruners keep their ``DG``: a later call for the
    last traced network with the same modules, parameter shapes and versions and example inputs
    returns the same graph, so a prune step's counting, allocation and links share one trace."""
    if not _CACHING[-1]:
        return _build_graph(net, example_inputs)
    key = graph_key(net, example_inputs)
    if _LAST and _LAST[0][0] is net and _LAST[0][1] == key:
        return _LAST[0][2]
    graph = _build_graph(net, example_inputs)
    _LAST[:] = [(net, key, graph)]  # the graph holds the network's modules, so their ids stay theirs
    return graph


def _build_graph(net: nn.Module, example_inputs) -> tp.DependencyGraph:
    with frozen(net), torch.enable_grad():
        for p in net.parameters():
            p.requires_grad_(True)
        try:
            graph = tp.DependencyGraph().build_dependency(net, example_inputs=example_inputs,
                                                          customized_pruners=CUSTOM_PRUNERS)
        except Exception as e:
            shape = tuple(example_inputs.shape) if isinstance(example_inputs, torch.Tensor) else type(example_inputs)
            try:
                with torch.no_grad():
                    net(*example_inputs) if isinstance(example_inputs, tuple) else net(example_inputs)
            except Exception:
                raise ValueError(f"the network does not run on the example inputs ({shape}): {type(e).__name__}: {e}. "
                                 "Pass example_inputs= that its forward accepts (one batch)") from e
            raise ValueError(f"the network runs on the example inputs ({shape}), but Torch-Pruning cannot trace its "
                             f"dependency graph ({type(e).__name__}: {e}), so none of its channels can be grouped or "
                             "pruned: this network is not supported (the support table in docs/library.md lists "
                             "the families that are)") from e
    layers = [name for name, m in net.named_modules() if isinstance(m, LAYERS)]
    if layers and not any(isinstance(m, LAYERS) for m in graph.module2node):
        raise ValueError(f"no layer of the network ({layers[:4]}...) reaches its output through autograd: its forward "
                         "returns something without a gradient path (e.g. a Pyro model's sampled labels). Pass the "
                         "network itself, a module whose forward returns its outputs (the logits)")
    return graph


class GroupTooLarge(ValueError):
    """Torch-Pruning's grouping of one layer's channels passed the bound of :func:`all_groups`."""


# the bound on one layer's grouping: index entries held (about 100 bytes each) and seconds; and on
# every layer's together (RexNet's partial residual sums: 5 s a layer for a dozen layers)
MAX_GROUP_ENTRIES = 2_000_000
MAX_GROUP_SECONDS = 5.0
MAX_GROUPING_SECONDS = 60.0


@contextlib.contextmanager
def _bounded_groups(max_entries: int, max_seconds: float):
    """Within the block, Torch-Pruning's ``get_pruning_group`` raises :class:`GroupTooLarge` once the
    group it builds holds more than ``max_entries`` channel indices or takes more than ``max_seconds``
    (e.g. EfficientFormerV2 at 224 px: its index mappings grow without end, to 23 GB)."""
    module = tp.dependency.graph
    base = module.Group
    start = time.perf_counter()

    class Bounded(base):
        entries = 0

        def add_dep(self, dep, idxs):
            Bounded.entries += len(idxs)
            self._check()
            super().add_dep(dep, idxs)

        def has_pruning_op(self, dep, idxs):  # the search's inner loop (quadratic in the group: RexNet)
            self._check()
            return super().has_pruning_op(dep, idxs)

        @staticmethod
        def _check():
            if Bounded.entries > max_entries or time.perf_counter() - start > max_seconds:
                raise GroupTooLarge(f"more than {max_entries:,} channel indices or {max_seconds:g} s")

    module.Group = Bounded
    try:
        yield
    finally:
        module.Group = base


def all_groups(graph: tp.DependencyGraph, ignored_layers: list, max_entries: int = MAX_GROUP_ENTRIES,
               max_seconds: float = MAX_GROUP_SECONDS, max_total_seconds: float = MAX_GROUPING_SECONDS):
    """Yield ``(root layer, group or None, why)`` for every conv/linear layer that roots a group, as
    Torch-Pruning's ``get_all_groups`` (one group per set of coupled layers), but each layer's grouping
    bounded (:func:`_bounded_groups`; all of them together by ``max_total_seconds``): one that passes
    the bound yields ``(root, None, why)``."""
    deadline = time.perf_counter() + max_total_seconds
    visited: set[nn.Module] = set()
    ignored = set(ignored_layers) | set(graph.IGNORED_LAYERS_IN_TRACING)
    for module in list(graph.module2node):
        if module in ignored or module in visited or not isinstance(module, LAYERS):
            continue
        pruner = graph.get_pruner_of_module(module)
        if pruner is None or pruner.get_out_channels(module) is None:
            continue
        try:
            with _bounded_groups(max_entries, min(max_seconds, max(0.0, deadline - time.perf_counter()))):
                group = graph.get_pruning_group(module, pruner.prune_out_channels,
                                                list(range(pruner.get_out_channels(module))))
        except GroupTooLarge as e:
            visited.add(module)
            yield module, None, str(e)
            continue
        outs = [dep.target.module for dep, _ in group if graph.is_out_channel_pruning_fn(dep.handler)]
        visited.update(outs)
        if not any(m in ignored for m in outs):
            yield module, group, None
