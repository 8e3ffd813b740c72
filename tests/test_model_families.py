"""Model families (issue 41): each prunes exactly at half its MACs (``trim``'s self-check passes) or
its groups are refused at ``channel_groups`` with a message naming the layer, never a raw torch error
and never first at ``trim``. Random weights, perturbed BatchNorm statistics, small inputs."""
import pytest
import torch
import torch.nn as nn

import pyro_dirichlet as pdl
from pyro_dirichlet.graph import all_groups, dependency_graph

timm = pytest.importorskip("timm")
torchvision = pytest.importorskip("torchvision")

T = lambda name, **kw: lambda: timm.create_model(name, pretrained=False, **kw)  # noqa: E731
V = lambda name, **kw: lambda: getattr(torchvision.models, name)(weights=None, **kw)  # noqa: E731
FAMILIES = {  # family: (constructor, input pixels)
    "densenet121 (timm)": (T("densenet121"), 32),
    "regnetx_002 (timm)": (T("regnetx_002"), 32),
    "swin-t (timm)": (T("swin_tiny_patch4_window7_224", img_size=64, window_size=4, depths=(1, 1, 1, 1)), 64),
    "levit_128s (timm)": (T("levit_128s", img_size=64), 64),
    "pvt_v2_b0 (timm)": (T("pvt_v2_b0"), 32),
    "resnet18 (torchvision)": (V("resnet18"), 32),
    "mobilenet_v3_small (torchvision)": (V("mobilenet_v3_small"), 32),
    "convnext_atto (timm)": (T("convnext_atto"), 32),
    "resnext (torchvision)": (V("resnext50_32x4d"), 32),
    "squeezenet (torchvision)": (V("squeezenet1_1"), 32),
}


def perturbed(net: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            m.running_mean.normal_(0, 0.1, generator=g)
            m.running_var.uniform_(0.5, 1.5, generator=g)
    return net.eval()


@pytest.mark.parametrize("family", FAMILIES)
def test_a_family_prunes_exactly_or_is_refused_at_channel_groups(family):
    make, pixels = FAMILIES[family]
    torch.manual_seed(0)
    net = perturbed(make())
    x = torch.randn(1, 3, pixels, pixels)
    groups = pdl.channel_groups(net, x)
    refused = [g for g in groups if g.problem]
    assert all(g.name in g.problem or len(g.problem) > 40 for g in refused)
    sites = [g.name for g in groups if g.problem is None and not g.is_output]
    assert sites, f"{family}: nothing prunable"
    pruner = pdl.Pruner(net, sites, x)
    g = torch.Generator().manual_seed(1)
    scores = {s: torch.rand(k, generator=g) for s, k in pruner.sizes.items()}
    counts = pruner.counts(scores, pruner.macs // 2)
    small = pruner.trim(scores, counts)  # raises unless it equals the masked net
    assert pdl.count_macs(small, x) == pdl.mac_model(net, sites, x)(counts) <= pruner.macs // 2
    assert pdl.count_params(small) == pdl.param_model(net, sites, x)(counts)
    for group in refused:  # a refused group is refused when the switches are built, not at trim
        with pytest.raises(ValueError, match="cannot be pruned"):
            pdl.SwitchedNetwork(net, [group.name], example_inputs=x)
        break


def test_the_failures_of_issue_41_are_refused_naming_the_reason():
    cases = {"densenet121 (timm)": "concatenated", "regnetx_002 (timm)": "grouped convolution",
             "swin-t (timm)": "trimmed network does not run", "levit_128s (timm)": "trimmed network does not run"}
    for family, reason in cases.items():
        make, pixels = FAMILIES[family]
        groups = pdl.channel_groups(perturbed(make()), torch.randn(1, 3, pixels, pixels))
        assert any(reason in (g.problem or "") for g in groups), family


def test_a_grouping_past_its_bound_is_refused_not_run_out_of_memory():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 3)).eval()
    graph = dependency_graph(net, torch.zeros(1, 3, 8, 8))
    outcomes = list(all_groups(graph, [], max_entries=4))
    assert [(root, group, why) for root, group, why in outcomes if group is None]
    assert all("channel indices" in why for _, group, why in outcomes if group is None)
    assert all(group is not None for _, group, _ in all_groups(graph, []))
