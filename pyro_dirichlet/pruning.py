"""Choosing how many channels to keep, and removing the others for real.

Keep counts come from (a) an architecture string ``"5-8-45-15"`` (one count per switched
layer, in order), (b) a MAC budget, or (c) a posterior-mass threshold per layer. Within a
layer the channels with the highest scores (posterior means) are kept.

MAC budget: channels are ordered globally by ``K_l * E_q[s_lk]`` (1 for every channel
under the uniform switch, so layers compare), and the longest prefix of that order whose
removal (keeping at least one channel per layer) brings the network within the budget is
removed; binary search over the prefix length, since MACs fall as channels go.

Trimming uses Torch-Pruning's dependency graph: a layer's removed output channels leave
the layer, its BatchNorm and every consumer (conv -> flatten -> linear included). A layer
whose channels are tied to another pruned layer's (e.g. through a residual sum) is
refused with an error naming the coupled layers.
"""
from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
import torch.nn as nn
import torch_pruning as tp

from .counting import count_macs
from .io import CheckpointError, atomic_write, load_json, load_torch, save_json
from .switches import layer_width


class CoupledLayersError(ValueError):
    """Pruning a layer would also remove output channels of other layers."""


def parse_architecture(
    text: str, sizes: Mapping[str, int], groups: Sequence[Sequence[str]] | None = None
) -> dict[str, int]:
    """``"5-8-45-15"`` -> ``{layer: count}`` for the layers of ``sizes`` (in order), 1 <= count <= K.

    With ``groups`` (e.g. a residual network's stages), one count per group is also
    accepted and applies to every layer of that group.
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
    return dict(zip(layers, counts))


def format_architecture(counts: Mapping[str, int]) -> str:
    return "-".join(str(int(c)) for c in counts.values())


def keep_indices(scores: Mapping[str, torch.Tensor], counts: Mapping[str, int]) -> dict[str, list[int]]:
    """The ``counts[l]`` highest-scoring channels of each layer, as sorted index lists."""
    return {name: sorted(torch.topk(scores[name], counts[name]).indices.tolist()) for name in counts}


def counts_for_mass(scores: Mapping[str, torch.Tensor], mass: float) -> dict[str, int]:
    """Per layer, the fewest top channels whose posterior-mean mass reaches ``mass`` (0 < mass <= 1)."""
    if not 0 < mass <= 1:
        raise ValueError(f"posterior-mass threshold must be in (0, 1], got {mass}")
    counts = {}
    for name, s in scores.items():
        cumulative = torch.cumsum(torch.sort(s / s.sum(), descending=True).values, 0)
        counts[name] = min(int((cumulative < mass - 1e-12).sum()) + 1, len(s))
    return counts


def counts_for_budget(
    net: nn.Module,
    scores: Mapping[str, torch.Tensor],
    budget_macs: int,
    input_shape: Sequence[int],
    macs_of: Callable[[dict[str, int]], int] | None = None,
) -> dict[str, int]:
    """Per-layer counts from the global order of ``K_l * score_lk`` that fit ``budget_macs``.

    ``macs_of(counts)`` gives the MACs of the network with those keep counts; by default the
    network is trimmed and counted (exact for any graph, ~50 ms a call for LeNet-5). After
    the binary search, removed channels are added back in descending score order while the
    budget allows, so the budget is used up as far as single channels can fill it.
    """
    sizes = {name: len(s) for name, s in scores.items()}
    if macs_of is None:
        def macs_of(counts: Mapping[str, int]) -> int:
            return count_macs(trim(net, keep_indices(scores, counts), input_shape), input_shape)

    smallest = macs_of({name: 1 for name in sizes})
    if budget_macs < smallest:
        raise ValueError(
            f"MAC budget {budget_macs:,} is below the smallest possible network ({smallest:,} MACs with one "
            "channel in every switched layer); raise the budget"
        )
    if budget_macs >= macs_of(sizes):
        return dict(sizes)
    order = sorted(((float(len(s) * v), name) for name, s in scores.items() for v in s.tolist()), key=lambda t: t[0])

    def counts_after(removed: int) -> dict[str, int]:
        counts = dict(sizes)
        for _, name in order[:removed]:
            counts[name] = max(1, counts[name] - 1)
        return counts

    lo, hi = 0, len(order)  # invariant: removing the first `hi` fits the budget (all layers at >= 1)
    while lo < hi:
        mid = (lo + hi) // 2
        if macs_of(counts_after(mid)) <= budget_macs:
            hi = mid
        else:
            lo = mid + 1
    counts = counts_after(hi)
    for _, name in reversed(order[:hi]):
        if counts[name] < sizes[name]:
            counts[name] += 1
            if macs_of(counts) > budget_macs:
                counts[name] -= 1
    return counts


def trim(net: nn.Module, keep: Mapping[str, Sequence[int]], input_shape: Sequence[int]) -> nn.Module:
    """A smaller dense copy of ``net`` keeping only ``keep[layer]`` output channels of each layer.

    Works on the net's device; ``input_shape`` (no batch dim) is used to trace the graph.
    """
    pruned = copy.deepcopy(net).eval().requires_grad_(True)  # the graph is traced through autograd
    device = next(pruned.parameters()).device
    graph = tp.DependencyGraph().build_dependency(pruned, example_inputs=torch.zeros(1, *input_shape, device=device))
    names = {module: name for name, module in pruned.named_modules()}
    for name, kept in keep.items():
        module = pruned.get_submodule(name)
        width = layer_width(module)
        if not kept or min(kept) < 0 or max(kept) >= width:
            raise ValueError(f"layer {name!r}: kept channels must be a non-empty subset of 0..{width - 1}")
        removed = sorted(set(range(width)) - set(int(k) for k in kept))
        if not removed:
            continue
        handler = tp.prune_conv_out_channels if isinstance(module, nn.Conv2d) else tp.prune_linear_out_channels
        group = graph.get_pruning_group(module, handler, idxs=removed)
        coupled = sorted(
            {
                names.get(dep.target.module, "?")
                for dep, _ in group
                if isinstance(dep.target.module, (nn.Conv2d, nn.Linear))
                and dep.target.module is not module
                and graph.is_out_channel_pruning_fn(dep.handler)
            }
        )
        if coupled:
            raise CoupledLayersError(
                f"layer {name!r} shares its output channels with {coupled} (e.g. through a residual sum); "
                "prune a layer whose channels are not tied to others, such as the first conv inside a block"
            )
        group.prune()
    return pruned


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
