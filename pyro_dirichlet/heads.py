"""Attention heads as switch sites: ``"<attention module>:heads"``.

An attention block's heads are one site with K = its number of heads, or of key/value heads
under grouped-query attention (each of the K units is then one key/value head and the G
query heads that share it, so key/value groups stay whole). Unit k's switch multiplies its
heads' output before the output projection: the projection's input ``(..., K * w)`` is viewed
as ``(..., K, w)`` and unit k scaled (w = G * head_dim). A zero switch removes the unit exactly,
so trimming removes its rows of the query, key and value projections (and of a gate), the
output projection's columns, and lowers the module's head counts.

Layouts, recognised by their attribute names (neither timm nor transformers is imported):

- ``fused`` (timm ``Attention``): ``qkv`` (rows ``[3, H, d]``), ``proj``, ``num_heads``,
  ``head_dim``, ``attn_dim`` (and ``gate``, rows ``[H, d]``);
- ``separate`` (Hugging Face BERT's ``BertAttention``): a child ``self`` with ``query``, ``key``,
  ``value``, ``num_attention_heads``, ``attention_head_size``, ``all_head_size``; ``output.dense``;
- ``projections`` (Hugging Face ViT, Llama and other GQA models): ``q_proj``, ``k_proj``,
  ``v_proj``, ``o_proj``, ``head_dim`` and ``num_key_value_groups`` (G, default 1).

``nn.MultiheadAttention`` is refused: its forward reads ``in_proj_weight`` and ``out_proj.weight``
itself, so no hook sees one head's output and no submodule can be trimmed.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch_pruning as tp

HEADS_SUFFIX = ":heads"


@dataclass(frozen=True)
class HeadLayout:
    """Where an attention module's K units (heads, or key/value groups) sit in its layers."""
    module: str  # the attention module's name; the site is module + ":heads"
    size: int  # K
    out_proj: str  # the Linear whose input features are the units' outputs, (K * w)
    rows: tuple[tuple[str, int], ...]  # (Linear, sections): its output rows are [sections, K, rows per unit]
    counts: tuple[tuple[str, str, int], ...]  # (module, attribute, per unit): set to kept * per unit by trimming
    kind: str  # "fused", "separate" or "projections"

    @property
    def site(self) -> str:
        return self.module + HEADS_SUFFIX


def is_head_site(site: str) -> bool:
    return site.endswith(HEADS_SUFFIX)


def _is_linear(module, *names: str) -> bool:
    return all(isinstance(getattr(module, n, None), nn.Linear) for n in names)


def _layout(name: str, module: nn.Module) -> HeadLayout | None:
    prefix = name + "." if name else ""
    if _is_linear(module, "qkv", "proj") and hasattr(module, "num_heads") and hasattr(module, "head_dim"):
        if not isinstance(getattr(module, "norm", nn.Identity()), nn.Identity):
            raise ValueError(f"{name!r}: a normalisation over the heads' outputs ({type(module.norm).__name__}, timm's "
                             "scale_norm) renormalises what a head switch scales, so its heads cannot be switched")
        rows = ((prefix + "qkv", 3),) + (((prefix + "gate", 1),) if _is_linear(module, "gate") else ())
        counts = ((name, "num_heads", 1),) + (((name, "attn_dim", module.head_dim),) if hasattr(module, "attn_dim") else ())
        return HeadLayout(name, module.num_heads, prefix + "proj", rows, counts, "fused")
    inner = getattr(module, "self", None)
    output = getattr(module, "output", None)
    if (inner is not None and _is_linear(inner, "query", "key", "value") and output is not None
            and _is_linear(output, "dense") and hasattr(inner, "attention_head_size")):
        d = inner.attention_head_size
        rows = tuple((f"{prefix}self.{n}", 1) for n in ("query", "key", "value"))
        counts = ((prefix + "self", "num_attention_heads", 1), (prefix + "self", "all_head_size", d))
        return HeadLayout(name, inner.value.out_features // d, prefix + "output.dense", rows, counts, "separate")
    if _is_linear(module, "q_proj", "k_proj", "v_proj", "o_proj") and hasattr(module, "head_dim"):
        d, groups = module.head_dim, getattr(module, "num_key_value_groups", 1)
        rows = tuple((prefix + n, 1) for n in ("q_proj", "k_proj", "v_proj"))
        counts = tuple((name, attr, per) for attr, per in (("num_attention_heads", groups), ("num_heads", groups),
                                                           ("num_key_value_heads", 1)) if hasattr(module, attr))
        return HeadLayout(name, module.k_proj.out_features // d, prefix + "o_proj", rows, counts, "projections")
    return None


def head_layouts(net: nn.Module) -> dict[str, HeadLayout]:
    """``{site: HeadLayout}`` of every attention module of ``net`` in a layout above (module order)."""
    layouts = {}
    for name, module in net.named_modules():
        layout = _layout(name, module)
        if layout is not None:
            layouts[layout.site] = layout
    return layouts


def head_layout(net: nn.Module, site: str) -> HeadLayout:
    """The layout of head site ``site`` (``"<attention module>:heads"``); a clear error otherwise."""
    name = site[: -len(HEADS_SUFFIX)]
    try:
        module = net.get_submodule(name)
    except AttributeError:
        raise ValueError(f"the network has no module {name!r}; its attention modules with heads: "
                         f"{sorted(head_layouts(net))}") from None
    if isinstance(module, nn.MultiheadAttention):
        raise ValueError(f"{name!r} is an nn.MultiheadAttention, whose forward reads in_proj_weight and "
                         "out_proj.weight itself, so no hook sees one head's output and it cannot be trimmed by "
                         "heads. Write the block with separate q/k/v (or a fused qkv) Linear layers and an output "
                         "projection (e.g. timm's Attention), then switch its heads")
    layout = _layout(name, module)
    if layout is None:
        raise ValueError(f"{name!r} ({type(module).__name__}) is not an attention module this library knows "
                         f"(timm Attention, Hugging Face BERT / ViT / Llama attention); known here: "
                         f"{sorted(head_layouts(net))}")
    return layout


def head_points(net: nn.Module) -> dict[str, str]:
    """``{Linear: head site}`` for the layers whose output rows are some site's heads."""
    return {linear: layout.site for layout in head_layouts(net).values() for linear, _ in layout.rows}


def _rows(layout_rows: int, sections: int, size: int, kept: Sequence[int]) -> list[int]:
    per = layout_rows // (sections * size)
    return [sec * size * per + k * per + j for sec in range(sections) for k in kept for j in range(per)]


def trim_heads(net: nn.Module, layout: HeadLayout, kept: Sequence[int]) -> torch.Tensor:
    """Remove the units not in ``kept`` from ``net`` in place (module docstring); returns the
    output projection's input mask ``(K * w,)`` of the masked network (1 = kept)."""
    out_proj = net.get_submodule(layout.out_proj)
    for linear_name, sections in layout.rows:
        linear = net.get_submodule(linear_name)
        rows = set(_rows(linear.out_features, sections, layout.size, kept))
        tp.prune_linear_out_channels(linear, [r for r in range(linear.out_features) if r not in rows])
    columns = _rows(out_proj.in_features, 1, layout.size, kept)
    mask = torch.zeros(out_proj.in_features)
    mask[columns] = 1.0
    tp.prune_linear_in_channels(out_proj, [c for c in range(out_proj.in_features) if mask[c] == 0])
    for module_name, attribute, per in layout.counts:
        setattr(net.get_submodule(module_name), attribute, len(kept) * per)
    return mask


def attention_macs(net: nn.Module, layout: HeadLayout, tokens: int) -> int:
    """MACs per example of the two attention products ``Q K^T`` and ``A V`` over ``tokens``
    tokens: ``2 N^2 H d`` (H query heads of size d), which no Linear layer's count includes."""
    linear, sections = layout.rows[0]
    return 2 * tokens * tokens * (net.get_submodule(linear).out_features // sections)
