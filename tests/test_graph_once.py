"""The dependency graph is built once per network and rebuilt when what it depends on changes;
every API takes example_inputs as a batch or as one input's shape."""
import torch
import torch.nn as nn

import pyro_dirichlet as pdl
from pyro_dirichlet import graph, groups
from pyro_dirichlet.models import build_model


def test_the_graph_is_shared_until_the_network_or_the_inputs_change():
    net = build_model("lenet5").eval()
    x = torch.zeros(1, 1, 28, 28)
    graph = groups.dependency_graph(net, x)
    assert groups.dependency_graph(net, x.clone()) is graph  # same modules, shapes, versions, inputs
    assert groups.dependency_graph(net, torch.ones(1, 1, 28, 28)) is not graph  # other inputs
    graph = groups.dependency_graph(net, x)
    with torch.no_grad():
        net.conv1.weight.add_(0.0)  # an in-place update (an optimiser step) bumps the version
    assert groups.dependency_graph(net, x) is not graph
    graph = groups.dependency_graph(net, x)
    net.fc2 = nn.Linear(500, 10)  # another module: another graph
    assert groups.dependency_graph(net, x) is not graph
    with groups.uncached():
        assert groups.dependency_graph(net, x) is not groups.dependency_graph(net, x)


def test_a_prune_step_traces_the_network_once_before_trimming(monkeypatch):
    net = build_model("resnet56", widths=[4] * 27).eval()
    built = []
    real = graph._build_graph
    monkeypatch.setattr(graph, "_build_graph", lambda *a: built.append(1) or real(*a))
    scores = {s: torch.rand(k) for s, k in pdl.site_sizes(net).items()}
    counts = pdl.counts_for_budget(net, scores, pdl.count_macs(net) // 2)
    links = pdl.input_links(net, list(scores))
    assert len(built) == 1  # allocation (MAC model, channel groups) and links share one graph
    small = pdl.trim(net, pdl.keep_indices(scores, counts, links))
    assert len(built) == 2  # trim traces the copy it cuts down (its own modules)
    assert pdl.count_macs(small) <= pdl.count_macs(net) // 2


def test_example_inputs_is_a_batch_or_the_shape_of_one_input():
    net = build_model("lenet5").eval()
    batch = torch.zeros(1, 1, 28, 28)
    assert pdl.count_macs(net, batch) == pdl.count_macs(net, (1, 28, 28)) == pdl.count_macs(net) == 2_293_000
    keep = {"conv1": [0, 1, 2], "fc1": list(range(10))}
    assert torch.equal(pdl.trim(net, keep, batch).conv1.weight, pdl.trim(net, keep, (1, 28, 28)).conv1.weight)
    assert pdl.input_links(net, ["fc1:in"], batch) == pdl.input_links(net, ["fc1:in"]) == {"fc1:in": ("conv2", 16)}
