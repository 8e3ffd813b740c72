"""Counting multiply-accumulates (MACs, the literature's "FLOPs") and parameters.

Conv2d: ``H_out * W_out * C_out * (C_in / groups) * kh * kw`` (Conv1d/3d and transposed
convs alike, :func:`layer_ops`); Linear: ``in * out`` per position. Activations, pooling and BatchNorm are not counted, as in the pruning literature.
Attention (the modules of :mod:`.heads`): ``2 N^2 H d`` for ``Q K^T`` and ``A V`` over N tokens.
``paper_flops`` is the LeNet-5 tables' convention (Bayesian Compression, FLOPs-as-objective,
Dirichlet pruning's Table 1): the MACs plus one add per bias element of every conv/linear
output. (``torch.utils.flop_counter`` reports 2 FLOPs per MAC.)
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn as nn

from .frozen import frozen, hooks
from .frozen import call
from .groups import channel_groups, default_example
from .heads import attention_macs, head_layout, head_layouts, is_head_site
from .sites import LAYERS, is_input_site, layer_module, layer_width, site_layer, site_width


UNCOUNTED = (nn.RNNBase, nn.MultiheadAttention)  # their matrix products bypass their submodules' forward


def layer_ops(net: nn.Module, example_inputs) -> dict[str, tuple[int, int]]:
    """``{layer: (MACs, bias adds)}`` per example for every conv/linear layer a forward pass of
    ``net`` on ``example_inputs`` runs (a tensor, or a tuple / dict of forward arguments).

    Conv1d/2d/3d: ``outputs * (C_in / groups) * prod(kernel)``; transposed convs: ``inputs *
    (C_out / groups) * prod(kernel)``; Linear: ``in * out`` per position (token); an attention
    module of :mod:`.heads`: ``{module: (2 N^2 H d, 0)}``, N its output projection's tokens. A network
    with a recurrent layer or ``nn.MultiheadAttention`` (whose products no hook sees) is refused."""
    uncounted = [name for name, m in net.named_modules() if isinstance(m, UNCOUNTED)]
    if uncounted:
        raise ValueError(f"MAC counting covers conv and linear layers; {uncounted} compute matrix products it cannot "
                         "see (recurrent or nn.MultiheadAttention layers): count this network with "
                         "torch.utils.flop_counter.FlopCounterMode (2 FLOPs per MAC)")
    ops: dict[str, tuple[int, int]] = {}
    names = {module: name for name, module in net.named_modules()}

    def hook(module, inputs, output):
        outputs = output.numel() // output.shape[0]  # per example
        if isinstance(module, nn.modules.conv._ConvTransposeNd):
            kernel = math.prod(module.kernel_size)
            macs = inputs[0].numel() // inputs[0].shape[0] * (module.out_channels // module.groups) * kernel
        elif isinstance(module, nn.modules.conv._ConvNd):
            macs = outputs * (module.in_channels // module.groups) * math.prod(module.kernel_size)
        else:
            macs = outputs * module.in_features
        done = ops.get(names[module], (0, 0))
        ops[names[module]] = (done[0] + macs, done[1] + (outputs if module.bias is not None else 0))

    def attention(layout):
        def hook(module, inputs):
            tokens = inputs[0].numel() // (inputs[0].shape[0] * module.in_features)
            done = ops.get(layout.module, (0, 0))[0]
            ops[layout.module] = (done + attention_macs(net, layout, tokens), 0)
        return hook

    counted = (nn.modules.conv._ConvNd, nn.Linear)
    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, counted)]
    handles += [net.get_submodule(layout.out_proj).register_forward_pre_hook(attention(layout))
                for layout in head_layouts(net).values()]
    with hooks(handles):
        with frozen(net), torch.no_grad():
            call(net, example_inputs)
    return ops


def count_ops(net: nn.Module, example_inputs=None) -> dict[str, int]:
    """``{"macs", "paper_flops"}`` of one forward pass of ``net`` on one input (``example_inputs``:
    a batch of one, or the shape of one input; :func:`.groups.default_example`)."""
    ops = layer_ops(net, default_example(net, example_inputs)).values()
    macs = sum(m for m, _ in ops)
    return {"macs": int(macs), "paper_flops": int(macs + sum(b for _, b in ops))}


def _kept_channel_sites(net: nn.Module, sites: Sequence[str], example) -> tuple[dict, dict, dict, dict]:
    """``(outputs, inputs, sizes, owned)``: layer -> site that sets its kept output channels, layer ->
    ``[(site, input channels it takes from the site)]`` (several: a concatenation; K x positions after
    a flatten; 2K where the site is concatenated twice), site -> K, and parameter name -> site whose
    channels it holds besides the layers' own (BatchNorms', LayerScale gammas)."""
    by_member = {m: g for g in channel_groups(net, example, check=False) for m in g.members}
    outputs: dict[str, str] = {}
    inputs: dict[str, list[tuple[str, int]]] = {}
    sizes: dict[str, int] = {}
    owned: dict[str, str] = {}
    for site in sites:
        if is_input_site(site):
            sizes[site] = site_width(net, site)
            inputs[site_layer(site)] = [(site, sizes[site])]  # its kept features set the layer's inputs
            continue
        if is_head_site(site):  # its rows of q, k, v, the projection's columns, and the attention products
            layout = head_layout(net, site)
            sizes[site] = layout.size
            outputs.update({linear: site for linear, _ in layout.rows} | {layout.module: site})
            projection = layer_module(net, layout.out_proj)
            inputs.setdefault(layout.out_proj, []).append((site, projection.in_features))
            continue
        group = by_member[site_layer(site)]
        sizes[site] = group.size
        outputs.update({m: site for m in group.members})
        for reader, read in zip(group.readers, group.reads):
            if not any(is_input_site(s) for s, _ in inputs.get(reader, [])):
                inputs.setdefault(reader, []).append((site, read))
        owned.update({name: site for name in group.parameters})
    return outputs, inputs, sizes, owned


def _scaled_sum(terms: list[tuple[int, str | None, int, str | None, int]]) -> Callable[[Mapping[str, int]], int]:
    """``f(counts) = sum unit * (counts[o] or 1) * o_scale * (counts[i] or 1) * i_scale`` over terms."""
    def total(counts: Mapping[str, int]) -> int:
        return sum(unit * (counts[o] if o else 1) * o_scale * (counts[i] if i else 1) * i_scale
                   for unit, o, o_scale, i, i_scale in terms)

    return total


def _layer_terms(net: nn.Module, name: str, per_layer: int, outputs: dict, inputs: dict, sizes: dict):
    """``[(unit, out site, out scale, in site, in scale)]`` of a conv/linear layer whose count is
    ``per_layer`` at full width: it scales with kept outputs and inputs (depthwise: outputs); one term
    for each site a concatenated input holds, and one for its unswitched channels."""
    module = layer_module(net, name)
    out_width = layer_width(module)
    in_width = module.in_features if isinstance(module, nn.Linear) else module.in_channels
    in_sites = inputs.get(name, [])
    if not isinstance(module, nn.Linear) and module.groups > 1:  # a filter reads in_channels / groups channels
        in_width, in_sites = module.in_channels // module.groups, []  # depthwise: the kept outputs set them;
        # grouped: no switch reaches them (:func:`.groups.channel_groups` refuses its groups)
    out_site = outputs.get(name)
    out_scale = out_width // sizes[out_site] if out_site else out_width
    unit = per_layer // (out_width * in_width)
    # each site's channels, read once or more (a concatenation, SqueezeNet's fire, DenseNet, DLA's roots)
    # or at positions (a flatten), and the unswitched rest
    rest = in_width - sum(read for _, read in in_sites)
    terms = [(unit, out_site, out_scale, site, read // sizes[site]) for site, read in in_sites]
    return terms + ([(unit, out_site, out_scale, None, rest)] if rest or not terms else [])


def mac_model(net: nn.Module, sites: Sequence[str], example_inputs=None) -> Callable[[Mapping[str, int]], int]:
    """``macs(counts)``: the MACs of ``net`` trimmed to ``counts[site]`` channels per site, without
    trimming it. Each conv/linear layer's MACs scale with its kept output channels (if it is
    a member of a switched channel group) and kept input channels (if it reads one, or is
    an input site ``"<linear>:in"``): ``m_l * (c_out / C_out) * (c_in / C_in)``; a depthwise
    conv by its output channels only. Exact where trimming removes only those channels
    (an input site's producer keeps every filter that one of its kept features reads)."""
    example = default_example(net, example_inputs)
    outputs, inputs, sizes, _ = _kept_channel_sites(net, sites, example)
    attention = {layout.module for layout in head_layouts(net).values()}
    terms = []
    for name, (macs, _) in layer_ops(net, example).items():
        if name not in attention:
            terms.extend(_layer_terms(net, name, macs, outputs, inputs, sizes))
        elif name in outputs:  # switched heads: the attention products scale with the kept heads
            terms.append((macs // sizes[outputs[name]], outputs[name], 1, None, 1))
        else:
            terms.append((macs, None, 1, None, 1))
    return _scaled_sum(terms)


def param_model(net: nn.Module, sites: Sequence[str], example_inputs=None) -> Callable[[Mapping[str, int]], int]:
    """``params(counts)``: the parameters of ``net`` trimmed to ``counts`` (as :func:`mac_model`):
    conv/linear weights scale with kept outputs and inputs, biases and the other parameters pruned
    with a switched group's channels (BatchNorms', LayerScale gammas) with kept outputs; every other
    parameter stays."""
    example = default_example(net, example_inputs)
    outputs, inputs, sizes, owned = _kept_channel_sites(net, sites, example)
    parameters = dict(net.named_parameters())
    terms, scaled = [], 0
    for name, module in net.named_modules():
        if isinstance(module, LAYERS):
            terms.extend(_layer_terms(net, name, module.weight.numel(), outputs, inputs, sizes))
            scaled += module.weight.numel()
            if module.bias is not None:
                site = outputs.get(name)
                terms.append((1, site, module.bias.numel() // sizes[site] if site else module.bias.numel(), None, 1))
                scaled += module.bias.numel()
    for name, site in owned.items():
        per_channel = parameters[name].numel() // sizes[site]
        terms.append((per_channel, site, 1, None, 1))
        scaled += per_channel * sizes[site]
    terms.append((count_params(net) - scaled, None, 1, None, 1))
    return _scaled_sum(terms)


def count_macs(net: nn.Module, example_inputs=None) -> int:
    """MACs of one forward pass of ``net`` on one input (as :func:`count_ops`)."""
    return count_ops(net, example_inputs)["macs"]


def count_params(net: nn.Module) -> int:
    return int(sum(p.numel() for p in net.parameters()))
