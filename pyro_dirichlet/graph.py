"""Torch-Pruning's dependency graph of a network, traced once and reused while the network,
its parameters and the example inputs stay the same (as Torch-Pruning's pruners keep their ``DG``)."""
from __future__ import annotations

import contextlib
import hashlib

import torch
import torch.nn as nn
import torch_pruning as tp

from .channel_map import CUSTOM_PRUNERS
from .frozen import frozen

LAYERS = (nn.Conv2d, nn.Linear)


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


def _graph_key(net: nn.Module, example_inputs) -> tuple:
    """What the graph depends on: the modules (their identity, the graph holds them) and their
    parameters' shapes, every parameter's in-place version (a training or pruning step changes
    it) and the example inputs."""
    structure = tuple((name, id(m), tuple(tuple(p.shape) for p in m.parameters(recurse=False)))
                      for name, m in net.named_modules())
    return structure, tuple(p._version for p in net.parameters()), _inputs_key(example_inputs)


def dependency_graph(net: nn.Module, example_inputs) -> tp.DependencyGraph:
    """Torch-Pruning's graph of ``net`` (traced through autograd, in eval mode; ``net`` is left
    as found). ``example_inputs``: a tensor, or a tuple / dict of forward arguments.

    Built once per network, as Torch-Pruning's pruners keep their ``DG``: a later call for the
    last traced network with the same modules, parameter shapes and versions and example inputs
    returns the same graph, so a prune step's counting, allocation and links share one trace."""
    if not _CACHING[-1]:
        return _build_graph(net, example_inputs)
    key = _graph_key(net, example_inputs)
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
            raise ValueError(f"the network does not run on the example inputs ({shape}): {type(e).__name__}: {e}. "
                             "Pass example_inputs= that its forward accepts (one batch)") from e
    layers = [name for name, m in net.named_modules() if isinstance(m, LAYERS)]
    if layers and not any(isinstance(m, LAYERS) for m in graph.module2node):
        raise ValueError(f"no layer of the network ({layers[:4]}...) reaches its output through autograd: its forward "
                         "returns something without a gradient path (e.g. a Pyro model's sampled labels). Pass the "
                         "network itself, a module whose forward returns its outputs (the logits)")
    return graph
