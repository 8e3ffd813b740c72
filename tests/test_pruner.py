"""``Pruner`` holds one trace of the network for every prune step and gives what the free functions give."""
import pytest
import torch

import pyro_dirichlet as pdl
from pyro_dirichlet import graph
from pyro_dirichlet.models import build_model


def test_pruner_traces_once_and_matches_the_free_functions(monkeypatch):
    net = build_model("lenet5").eval()
    built = []
    real = graph._build_graph
    monkeypatch.setattr(graph, "_build_graph", lambda *a: built.append(1) or real(*a))
    pruner = pdl.Pruner(net, net.prunable_layers)
    scores = {s: torch.rand(k, generator=torch.Generator().manual_seed(0)) for s, k in pruner.sizes.items()}
    budget = pruner.macs // 4
    counts = pruner.counts(scores, budget, "by-score")
    assert len(built) == 1  # widths, links, MACs and the allocation share the one trace
    assert counts == pdl.counts_for_budget(net, scores, budget, links=pruner.links, per_mac=False)
    small = pruner.trim(scores, counts)
    assert pdl.count_macs(small) <= budget
    assert pruner.keep(scores, counts) == pdl.keep_indices(scores, counts, pruner.links)


def test_pruner_refuses_an_unknown_allocation():
    net = build_model("lenet5").eval()
    pruner = pdl.Pruner(net, ["conv1"])
    with pytest.raises(ValueError, match="unknown allocation 'per-layer'"):
        pruner.counts({"conv1": torch.rand(20)}, 10**6, "per-layer")
