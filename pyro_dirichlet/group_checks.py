"""Why a channel group's channels cannot be removed exactly, read from its structure before any
fit (:func:`.groups.channel_groups` turns each finding into the group's ``problem``): a normalisation
over its channels, a flatten that is not channel-major, a grouped convolution, a split or a GLU."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch_pruning as tp

from .frozen import call, frozen, hooks
from .sites import LAYERS, channel_dim


@torch.no_grad()
def _inputs_with_channel_zeroed(net: nn.Module, example_inputs, points: Sequence[str], size: int,
                                readers: Sequence[nn.Module]) -> dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] | None:
    """``{reader: its first input (as is, with channel 0 of a group zeroed at its switch points)}`` on
    a random input shaped like the example, for the readers the forward calls (a registered module it
    never calls has none); None for a non-tensor example (not checked)."""
    if not isinstance(example_inputs, torch.Tensor) or not example_inputs.is_floating_point():
        return None
    x = torch.randn(example_inputs.shape, generator=torch.Generator().manual_seed(0)).to(example_inputs)
    seen = {m: [] for m in readers}
    zero = torch.ones(size, device=x.device)
    zero[0] = 0.0

    def scale(module, args, out):
        shape = [1] * out.dim()
        shape[channel_dim(module)] = -1
        return out * zero.to(out).reshape(shape)

    with frozen(net):
        for masked in (False, True):
            handles = [m.register_forward_pre_hook(lambda m, args: seen[m].append(args[0])) for m in readers]
            handles += [net.get_submodule(p).register_forward_hook(scale) for p in points] if masked else []
            with hooks(handles):
                call(net, x)
    return {m: (inputs[0], inputs[-1]) for m, inputs in seen.items() if inputs}


def _reads_channel_major(net: nn.Module, example_inputs, points: Sequence[str], reader: nn.Linear, size: int) -> bool:
    """Whether zeroing channel 0 of a group (at its switch ``points``) changes only the first
    ``in_features / size`` input features of ``reader`` (a flatten that is channel-major)."""
    pairs = _inputs_with_channel_zeroed(net, example_inputs, points, size, [reader])
    if pairs is None or reader not in pairs:
        return True
    full, masked = pairs[reader]
    changed = (full.flatten(1) != masked.flatten(1)).any(0).nonzero().flatten()
    return bool((changed < reader.in_features // size).all())


def _untraced_norms_reading(net: nn.Module, example_inputs, points: Sequence[str], size: int,
                            norms: Sequence[nn.Module]) -> list[nn.Module]:
    """The ``norms`` (normalisations Torch-Pruning traces as plain arithmetic, e.g. Hugging Face's
    ``LlamaRMSNorm``) whose input's last dim holds the group's channels: zeroing channel 0 at the
    switch points changes exactly feature 0 there."""
    pairs = _inputs_with_channel_zeroed(net, example_inputs, points, size, norms)
    reading = []
    for norm, (full, masked) in (pairs or {}).items():
        if full.shape[-1] == size:
            changed = (full != masked).reshape(-1, size).any(0).nonzero().flatten()
            if changed.tolist() == [0]:
                reading.append(norm)
    return reading


def _out_channels(graph: tp.DependencyGraph, module: nn.Module) -> int | None:
    pruner = graph.get_pruner_of_module(module)
    return None if pruner is None else pruner.get_out_channels(module)


def _is_grouped(module: nn.Module) -> bool:
    """A convolution with groups that are neither one nor depthwise (one input channel a group)."""
    return isinstance(module, nn.modules.conv._ConvNd) and 1 < module.groups < module.in_channels


def _split_by(graph: tp.DependencyGraph, layer: nn.Module) -> str | None:
    """How ``layer``'s outputs are split before any other layer reads them: ``"a GLU"`` (``nn.GLU`` /
    ``F.glu``), ``"a chunk/split at offsets [...] whose parts multiply"`` (a gate), ``"split at offsets
    [...]"`` (parts of fixed sizes, e.g. Res2Net), or None."""
    seen, todo = set(), [(graph.module2node[layer], None)]  # (node, the split on the path to it)
    first_split = None
    while todo:
        node, split = todo.pop()
        for after in node.outputs:
            if (after, split) in seen or isinstance(after.module, LAYERS):
                continue
            seen.add((after, split))
            if "GluBackward" in after.name:
                return "a GLU"
            if split and "MulBackward" in after.name and len(after.inputs) > 1:
                return f"a chunk/split at offsets {split} whose parts multiply"
            offsets = after.name.split("(", 1)[-1].rstrip(")") if isinstance(after.module, tp.ops._SplitOp) else None
            todo.append((after, split or offsets))
            first_split = first_split or offsets
    return f"split at offsets {first_split}" if first_split else None


def renormalises(module: nn.Module) -> bool:
    """A normalisation over the channel dimension: LayerNorm, GroupNorm, RMSNorm, or a model's own
    (Hugging Face's ``LlamaRMSNorm``, timm's ``LayerNorm2d``), known by its class name."""
    return (isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm))
            or type(module).__name__.endswith(("LayerNorm", "RMSNorm", "LayerNorm2d")))
