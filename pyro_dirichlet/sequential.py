"""Sequential fitting: each site's switches fitted on the network with the earlier sites already
pruned, so that a site's posterior sees the context it will be pruned in.

A layer-by-layer fit scores every site with the rest of the network whole. On the ViT study that
picks heads that are good alone but not beside the other blocks' pruning; fitted in its pruned
context each block's choice is the best of its subsets there (``results/archive/vit_cifar10_forms_sequential.md``).
The price: the kept counts must be known before the fit (e.g. a shared architecture).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from .allocation import keep_indices
from .data import ArrayDataset
from .fit import FitConfig, fit_switches
from .io import settings_key
from .pruning import trim
from .sites import site_sizes
from .switch_config import SwitchConfig
from .switches import SwitchedNetwork


def fit_sequential(net: nn.Module, sites: Sequence[str], counts: dict[str, int], data: ArrayDataset,
                   cfg: FitConfig = FitConfig(), switch: SwitchConfig = SwitchConfig(), example_inputs=None,
                   checkpoint_dir: str | Path | None = None, progress: bool = False) -> dict[str, torch.Tensor]:
    """Posterior means ``{site: (K_site,) E[s]}`` of ``sites`` in the order given: site i's
    ``Dir(phi_i)`` is fitted (``cfg``, one stage) on ``net`` trimmed to ``counts`` at sites
    0..i-1 by their own means, ``E[s_i] = phi_i / sum(phi_i)``. ``example_inputs``: a batch, or
    one input's shape (left out: ``net.input_shape``). ``checkpoint_dir``: one resumable
    fit per site, named by the site and the channels kept before it (a new context refits).
    Refuses a site whose size changes when an earlier one is pruned (an input site after its
    producer): its means would not index the original network's channels."""
    sizes = site_sizes(net, list(sites))
    means: dict[str, torch.Tensor] = {}
    pruned = net
    for i, site in enumerate(sites):
        keep = keep_indices(means, {s: counts[s] for s in means}) if means else {}
        if keep:
            pruned = trim(net, keep, example_inputs)
        checkpoint = None if checkpoint_dir is None else Path(checkpoint_dir) / (
            f"site-{i}-{settings_key({'site': site, 'kept_before': keep})}.ckpt")
        batch = example_inputs if isinstance(example_inputs, torch.Tensor) else None  # a shape: trim's only
        switched = SwitchedNetwork(pruned, [site], switch, example_inputs=batch)
        if switched.sizes[site] != sizes[site]:
            raise ValueError(f"site {site!r} has {switched.sizes[site]} channels once {sorted(keep)} are pruned, "
                             f"not {sizes[site]}: list it before the sites it depends on")
        guide, _ = fit_switches(switched, data, cfg, checkpoint=checkpoint, progress=progress)
        means[site] = guide.means([site])[site]
    return means
