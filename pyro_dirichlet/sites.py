"""Switch sites: where a Dirichlet switch sits in a network, and how wide it is.

A site is named after a conv/linear layer (its module name; any ``nn.Conv1d/2d/3d``, transposed ones
too, or ``nn.Linear``: :data:`LAYERS`):

- ``"conv2"`` switches the layer's **outputs**: K = ``out_channels`` / ``out_features``;
- ``"fc1:in"`` switches a Linear layer's **input features**: K = ``in_features``. After a
  flatten, each input feature belongs to one channel of the layer that produced it (the
  producer), e.g. LeNet-5's fc1 reads 800 = 50 channels x 16 positions of conv2;
- ``"blocks.0.attn:heads"`` switches an attention module's **heads** (:mod:`.heads`): K = its
  heads (its key/value heads under grouped-query attention).

A Linear layer's features are its last dim, whatever leads (``(B, C)``, tokens ``(B, N, C)``);
a conv's channels are dim 1 (:func:`channel_dim`).

A layer that reads only some of its input features after trimming is wrapped in
:class:`InputSelect`; :func:`layer_module` sees through the wrapper.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from .heads import head_layout, is_head_site

__all__ = ["LAYERS", "INPUT_SUFFIX", "InputSelect", "is_input_site", "site_layer", "site_width", "site_sizes", "check_sites"]

INPUT_SUFFIX = ":in"
# the layers a switch attaches to: convolutions of any dimension (transposed ones too) and Linear layers
LAYERS = (nn.modules.conv._ConvNd, nn.Linear)


class InputSelect(nn.Module):
    """``layer(x[:, index])``: a layer that reads only the kept input features.

    x: ``(B, F)``; index: ``(F_kept,)`` int64 positions in x; ``layer`` takes ``(B, F_kept)``.
    """

    def __init__(self, layer: nn.Module, index: Sequence[int]):
        super().__init__()
        self.layer = layer
        self.register_buffer("index", torch.as_tensor(list(index), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x.index_select(1, self.index))


def is_input_site(site: str) -> bool:
    return site.endswith(INPUT_SUFFIX)


def site_layer(site: str) -> str:
    """The module name of a site: ``"fc1:in"`` -> ``"fc1"``, ``"blocks.0.attn:heads"`` -> ``"blocks.0.attn"``."""
    return site.rsplit(":", 1)[0] if is_input_site(site) or is_head_site(site) else site


def channel_dim(module: nn.Module) -> int:
    """The dim of ``module``'s output (or input) that holds its channels: -1 for a Linear layer
    (features last, after any token dims), 1 otherwise (conv, BatchNorm: ``(B, C, ...)``)."""
    return -1 if isinstance(module, nn.Linear) else 1


def layer_module(net: nn.Module, layer: str) -> nn.Module:
    """``net``'s conv/linear layer called ``layer`` (inside its :class:`InputSelect`, if any)."""
    try:
        module = net.get_submodule(layer)
    except AttributeError:
        layers = [name for name, m in net.named_modules() if isinstance(m, LAYERS)]
        raise ValueError(f"the network has no layer {layer!r}; its conv/linear layers: {layers}") from None
    return module.layer if isinstance(module, InputSelect) else module


def layer_width(module: nn.Module) -> int:
    """Output channels (conv) or units (linear)."""
    if isinstance(module, nn.Linear):
        return module.out_features
    if isinstance(module, nn.modules.conv._ConvNd):
        return module.out_channels
    raise TypeError(f"switches attach to conv layers (nn.Conv1d/2d/3d, transposed too) or nn.Linear layers, "
                    f"not {type(module).__name__}")


def site_width(net: nn.Module, site: str) -> int:
    """K of the site's switch (see the module docstring)."""
    if is_head_site(site):
        return head_layout(net, site).size
    module = layer_module(net, site_layer(site))
    if not is_input_site(site):
        return layer_width(module)
    if not isinstance(module, nn.Linear):
        raise TypeError(f"input switches ({site!r}) attach to nn.Linear layers, not {type(module).__name__}; "
                        "for a conv layer, switch the outputs of the layer that produces its input")
    return module.in_features


def site_sizes(net: nn.Module, sites: Sequence[str] | None = None) -> dict[str, int]:
    """``{site: K}`` for ``sites`` (default: the zoo's ``net.prunable_layers``)."""
    return {site: site_width(net, site) for site in (sites or net.prunable_layers)}


def check_sites(net: nn.Module, sites: Sequence[str]) -> None:
    """Raise a ValueError naming the problem if ``sites`` are not distinct switchable sites of ``net``."""
    if not sites or len(set(sites)) != len(sites):
        raise ValueError(f"layers must be a non-empty list of distinct names, got {list(sites)}")
    names = dict(net.named_modules())
    unknown = [site for site in sites if site_layer(site) not in names]
    if unknown:
        prunable = [n for n, m in names.items() if isinstance(m, LAYERS)]
        raise ValueError(f"unknown layer name(s) {unknown}; this network's conv/linear layers are {prunable} "
                         f"(add {INPUT_SUFFIX!r} to a Linear layer's name to switch its input features)")
    for site in sites:
        try:
            site_width(net, site)
        except (TypeError, ValueError) as e:
            raise ValueError(str(e)) from None
