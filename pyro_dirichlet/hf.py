"""Hugging Face models: one-tensor access for the library's steps, and a pruned model's files.

The library's steps (switches, ``trim``'s check, counting) call a network on one tensor and
read a tensor back; :class:`Logits` gives a ``transformers`` model that form. A pruned model's
layers no longer match its config (fewer heads in some layers, fewer FFN units, per layer),
which a config cannot say and ``from_pretrained`` would refuse as a size mismatch:
:func:`save_pretrained` records, in ``config.pruned_shapes``, the shape of every Linear layer
that differs from a model built from the config and every head count of :mod:`.heads`;
:func:`from_pretrained` builds the model from its config, gives those layers their shapes and
head counts, and loads the weights strictly. ``transformers`` is imported only by these two.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from .heads import head_layouts

RECORD = "pruned_shapes"


class Logits(nn.Module):
    """``model(**{input_name: x}).logits``: a Hugging Face model as a network of one tensor.

    ``input_name``: ``"pixel_values"`` (ViT, ``(B, C, H, W)``), ``"inputs_embeds"`` (BERT,
    ``(B, N, hidden)``: token embeddings, so that a random input is a valid one)."""

    def __init__(self, model: nn.Module, input_name: str = "pixel_values", input_shape=None):
        super().__init__()
        self.model, self.input_name = model, input_name
        if input_shape is not None:
            self.input_shape = tuple(input_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(**{self.input_name: x}).logits


def _record(model: nn.Module) -> dict:
    """``{"linear": {name: [out, in, has bias]}, "counts": {module: {attribute: value}}}`` of ``model``."""
    linear = {name: [m.out_features, m.in_features, m.bias is not None]
              for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    counts = {}
    for layout in head_layouts(model).values():
        for module, attribute, _ in layout.counts:
            counts.setdefault(module, {})[attribute] = getattr(model.get_submodule(module), attribute)
    return {"linear": linear, "counts": counts}


def save_pretrained(model: nn.Module, folder: str | Path, **kwargs) -> None:
    """``model.save_pretrained(folder, save_original_format=False)`` (the weights under the
    model's own parameter names) with its layer shapes and head counts in the config."""
    setattr(model.config, RECORD, _record(model))
    model.save_pretrained(folder, **{"save_original_format": False, **kwargs})


def from_pretrained(model_class, folder: str | Path) -> nn.Module:
    """The model that :func:`save_pretrained` wrote to ``folder``, as ``model_class`` (e.g.
    ``BertForSequenceClassification``), in eval mode; a model saved by plain ``save_pretrained``
    loads as ``model_class.from_pretrained`` would load it."""
    from safetensors.torch import load_file
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(folder)
    record = getattr(config, RECORD, None)
    if record is None:
        return model_class.from_pretrained(folder).eval()
    model = model_class(config)
    for name, (out_features, in_features, bias) in record["linear"].items():
        linear = model.get_submodule(name)
        if (linear.out_features, linear.in_features) != (out_features, in_features):
            linear.weight = nn.Parameter(linear.weight.new_empty(out_features, in_features))
            linear.bias = nn.Parameter(linear.weight.new_empty(out_features)) if bias else None
            linear.out_features, linear.in_features = out_features, in_features
    for module, values in record["counts"].items():
        for attribute, value in values.items():
            setattr(model.get_submodule(module), attribute, value)
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{folder} has no *.safetensors weights: save the model with "
                                "pyro_dirichlet.hf.save_pretrained(model, folder)")
    state = {k: v for f in files for k, v in load_file(f).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {k for k in missing if any(k.endswith(t) for t in getattr(model, "_tied_weights_keys", None) or ())}
    if set(missing) - tied or unexpected:
        raise ValueError(f"the weights in {folder} do not fit the recorded shapes: missing {sorted(set(missing) - tied)}"
                         f", unexpected {sorted(unexpected)}")
    return model.eval()
