"""Does a ranking pick the channels that matter? Measured removal costs and rank statistics.

- :func:`removal_costs`: for every channel of a site, the rise in mean cross-entropy on
  ``data`` when that channel alone is removed (switch 0 on it, 1 on every other channel of
  every site), ``cost_k = CE(without k) - CE(full)``. The removals of a chunk of channels
  run as particles of one batched forward pass (:class:`SwitchedNetwork`), so the layers
  before the site run once per batch.
- :func:`spearman` and :func:`kendall_tau`: rank correlations of two score vectors
  (average ranks for ties in Spearman's; tau-b in Kendall's).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .switch_config import SwitchConfig
from .switches import SwitchedNetwork


@torch.no_grad()
def removal_costs(net: nn.Module, sites: Sequence[str], data, batch_size: int = 1000,
                  chunk: int = 32) -> dict[str, torch.Tensor]:
    """``{site: (K,) rise in mean cross-entropy on data when channel k alone is removed}``."""
    costs = {}
    for site in sites:
        switched = SwitchedNetwork(net, [site], SwitchConfig(form="Ks"))  # s = 1/K: the full network
        K = switched.sizes[site]
        total = torch.zeros(K + 1, dtype=torch.float64)  # row 0: the full network
        for x, y, _ in data.batches(batch_size):
            for start in range(0, K, chunk):
                channels = torch.arange(start, min(start + chunk, K), device=x.device)
                s = torch.full((len(channels) + 1, K), 1.0 / K, device=x.device)
                s[torch.arange(1, len(channels) + 1, device=x.device), channels] = 0.0  # particle i+1 drops channel i
                logits = switched.forward(x, {site: s}).float().reshape(len(channels) + 1, len(y), -1)
                ce = F.cross_entropy(logits.flatten(0, 1), y.repeat(len(channels) + 1), reduction="none")
                ce = ce.reshape(len(channels) + 1, len(y)).sum(1).double().cpu()
                total[1 + start: 1 + start + len(channels)] += ce[1:]
                if start == 0:
                    total[0] += ce[0]
        costs[site] = ((total[1:] - total[0]) / len(data)).float()
    return costs


def _ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks 1..n of x, ties given their average rank."""
    x = x.double().flatten()
    order = torch.argsort(x, stable=True)
    ranks = torch.empty_like(x)
    ranks[order] = torch.arange(1, len(x) + 1, dtype=torch.float64)
    values, inverse = torch.unique(x, return_inverse=True)
    sums = torch.zeros(len(values), dtype=torch.float64).index_add_(0, inverse, ranks)
    counts = torch.zeros(len(values), dtype=torch.float64).index_add_(0, inverse, torch.ones_like(ranks))
    return (sums / counts)[inverse]


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's rank correlation of two equally long vectors (nan if either is constant)."""
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))


def kendall_tau(a: torch.Tensor, b: torch.Tensor) -> float:
    """Kendall's tau-b of two equally long vectors (O(n^2) pairs)."""
    a, b = a.double().flatten(), b.double().flatten()
    da = torch.sign(a[:, None] - a[None, :])
    db = torch.sign(b[:, None] - b[None, :])
    concordance = (da * db).triu(1).sum()
    pairs_a = (da != 0).triu(1).sum()
    pairs_b = (db != 0).triu(1).sum()
    return float(concordance / torch.sqrt(pairs_a.double() * pairs_b.double()))
