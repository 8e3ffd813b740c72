"""Coupled channel groups, Monte-Carlo particles on residual networks, the output layer, and
the user's module left as it was found."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch_pruning as tp
import torchvision

import pyro_dirichlet as pdl
from pyro_dirichlet.groups import channel_groups
from pyro_dirichlet.models import build_model

from test_cifar_models import TINY, randomize_batchnorm

X32 = torch.zeros(1, 3, 32, 32)


def torchvision_net(name):
    torch.manual_seed(0)
    return randomize_batchnorm(getattr(torchvision.models, name)(num_classes=10))


def every_prunable_group(net, example):
    return [g.name for g in channel_groups(net, example) if not g.is_output and g.problem is None]


NETWORKS = {  # name: (network, example input, sites)
    "resnet18": lambda: (net := torchvision_net("resnet18"), X32, every_prunable_group(net, X32)),
    "mobilenet_v2": lambda: (net := torchvision_net("mobilenet_v2"), X32, every_prunable_group(net, X32)),
    "resnet56": lambda: (net := randomize_batchnorm(build_model("resnet56", **TINY["resnet56"])), X32,
                         every_prunable_group(net, X32)),
    "wrn28_10": lambda: (net := randomize_batchnorm(build_model("wrn28_10", **TINY["wrn28_10"])), X32,
                         every_prunable_group(net, X32)),
}


def test_groups_cover_every_conv_of_torchvision_networks():
    for name, convs, groups in (("resnet18", 20, 12), ("mobilenet_v2", 52, 25)):
        net, example, sites = NETWORKS[name]()
        found = [g for g in channel_groups(net, example) if not g.is_output]
        assert len(found) == len(sites) == groups and all(g.problem is None for g in found)
        assert sum(len(g.members) for g in found) == convs  # every conv is in exactly one group
    # a depthwise conv goes with the conv that produces its input
    assert next(g for g in found if "features.2.conv.1.0" in g.members).members == (
        "features.2.conv.0.0", "features.2.conv.1.0")


def test_naming_members_names_the_group():
    net = torchvision_net("resnet18")
    one = pdl.SwitchedNetwork(net, ["layer1.1.conv2"], example_inputs=X32)
    several = pdl.SwitchedNetwork(net, ["layer1.0.conv2", "conv1", "layer1.1.conv2", "layer1.0.conv1"],
                                  example_inputs=X32)
    assert one.sites == ["conv1"] and several.sites == ["conv1", "layer1.0.conv1"]
    assert one.sizes == {"conv1": 64}
    assert [m for m in one.switch_points()["conv1"]] == [net.bn1, net.layer1[0].bn2, net.layer1[1].bn2]


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_trimmed_equals_masked_with_every_group_switched(name):
    net, example, sites = NETWORKS[name]()
    switched = pdl.SwitchedNetwork(net, sites, pdl.SwitchConfig(form="Ks"), example_inputs=example)  # K s = 1 or 0
    gen = torch.Generator().manual_seed(1)
    scores = {n: torch.rand(k, generator=gen) for n, k in switched.sizes.items()}
    keep = pdl.keep_indices(scores, {n: max(1, k // 2) for n, k in switched.sizes.items()})
    masked = {n: torch.zeros(k).index_fill_(0, torch.tensor(keep[n]), 1.0 / k) for n, k in switched.sizes.items()}
    small = pdl.trim(net, keep, example.shape[1:])
    x = torch.randn(3, *example.shape[1:])
    assert pdl.count_macs(small, example.shape[1:]) < 0.6 * pdl.count_macs(net, example.shape[1:])
    with torch.no_grad():
        expected = switched.forward(x, masked)
        assert torch.allclose(small.eval()(x), expected, atol=1e-4, rtol=1e-4)
        assert not torch.allclose(expected, net.eval()(x), atol=1e-3)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_particles_agree_with_one_pass_per_particle(name):
    net, example, sites = NETWORKS[name]()
    switched = pdl.SwitchedNetwork(net, sites, example_inputs=example)
    torch.manual_seed(2)
    s = {n: torch.distributions.Dirichlet(torch.ones(k)).sample((3, 1)) for n, k in switched.sizes.items()}
    x = torch.randn(2, *example.shape[1:])
    with torch.no_grad():
        folded = switched.forward(x, s)
        each = torch.cat([switched.forward(x, {n: v[p, 0] for n, v in s.items()}) for p in range(3)])
    assert folded.shape == (6, 10) and torch.allclose(folded, each, atol=1e-4, rtol=1e-4)


def test_mc_fits_a_residual_network():
    net = randomize_batchnorm(build_model("resnet56", **TINY["resnet56"]))
    gen = torch.Generator().manual_seed(0)
    data = pdl.ArrayDataset(torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=gen),
                            torch.randint(0, 10, (16,), generator=gen), (0.5,) * 3, (0.25,) * 3)
    switched = pdl.SwitchedNetwork(net, net.prunable_layers)
    guide, history = pdl.fit_switches(switched, data, pdl.FitConfig(estimator="mc", num_samples=3, epochs=1,
                                                                    batch_size=8, mode="joint"), progress=False)
    assert len(history) == 1 and torch.isfinite(torch.tensor(history[0]["loss"]))
    assert not torch.allclose(guide.phi("stage1.0.conv1"), torch.full((4,), 10.0))


class UserCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 3)
        self.bn = nn.BatchNorm2d(6)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        return self.head(self.drop(F.relu(self.bn(self.conv(x)))).mean((2, 3)))


def test_the_output_layer_is_refused_unless_asked_for():
    net = UserCNN()
    with pytest.raises(ValueError, match=r"'head' is the network's output layer.*'head:in'.*allow_output=True"):
        pdl.SwitchedNetwork(net, ["conv", "head"], example_inputs=torch.zeros(1, 1, 8, 8))
    switched = pdl.SwitchedNetwork(net, ["conv", "head"], example_inputs=torch.zeros(1, 1, 8, 8), allow_output=True)
    assert switched.sizes == {"conv": 6, "head": 3}
    with pytest.raises(ValueError, match="pass example_inputs="):
        pdl.SwitchedNetwork(net, ["conv"])


def test_the_users_module_is_left_as_found():
    net = UserCNN().train()
    net.bn.eval()  # a user's own mix of modes and frozen parameters
    net.conv.bias.requires_grad_(False)
    modes = [m.training for m in net.modules()]
    flags = [p.requires_grad for p in net.parameters()]
    before = {k: v.clone() for k, v in net.state_dict().items()}
    gen = torch.Generator().manual_seed(0)
    data = pdl.ArrayDataset(torch.randint(0, 256, (32, 1, 8, 8), dtype=torch.uint8, generator=gen),
                            torch.randint(0, 3, (32,), generator=gen), (0.5,), (0.25,))
    switched = pdl.SwitchedNetwork(net, ["conv"], example_inputs=torch.zeros(1, 1, 8, 8))
    pdl.fit_switches(switched, data, pdl.FitConfig(estimator="mc", epochs=1, batch_size=16), progress=False)
    pdl.count_macs(net, (1, 8, 8))
    assert [m.training for m in net.modules()] == modes
    assert [p.requires_grad for p in net.parameters()] == flags
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())
    # plain training and Torch-Pruning still work on it
    F.cross_entropy(net(torch.randn(4, 1, 8, 8)), torch.tensor([0, 1, 2, 0])).backward()
    assert net.conv.weight.grad is not None
    pruner = tp.pruner.MagnitudePruner(net, torch.zeros(1, 1, 8, 8), tp.importance.MagnitudeImportance(p=1),
                                       pruning_ratio=0.5, ignored_layers=[net.head])
    pruner.step()
    assert net.conv.out_channels == 3


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "wrn28_10"])
def test_the_mac_and_param_models_count_what_trimming_leaves(name):
    net, example, sites = NETWORKS[name]()
    macs, params = pdl.mac_model(net, sites, example), pdl.param_model(net, sites, example)
    switched = pdl.SwitchedNetwork(net, sites, example_inputs=example)
    gen = torch.Generator().manual_seed(3)
    for _ in range(2):
        counts = {s: int(torch.randint(1, k + 1, (1,), generator=gen)) for s, k in switched.sizes.items()}
        keep = pdl.keep_indices({s: torch.rand(k, generator=gen) for s, k in switched.sizes.items()}, counts)
        small = pdl.trim(net, keep, example.shape[1:])
        assert macs(counts) == pdl.count_macs(small, example.shape[1:])
        assert params(counts) == pdl.count_params(small)
    full = pdl.count_macs(net, example.shape[1:])
    counts = pdl.counts_for_budget(net, {s: torch.rand(k, generator=gen) for s, k in switched.sizes.items()},
                                   full // 2, example.shape[1:])
    assert 0.97 * full // 2 < macs(counts) <= full // 2


class DictNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc0, self.fc1 = nn.Linear(4, 6), nn.Linear(6, 2)

    def forward(self, batch):
        return self.fc1(torch.relu(self.fc0(batch["x"])))


@pytest.mark.filterwarnings("ignore:Using a non-tuple sequence")
def test_a_network_that_takes_a_dict_is_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"example_inputs is a dict.*Wrap a network"):
        pdl.SwitchedNetwork(DictNet(), ["fc0"], example_inputs={"batch": {"x": torch.zeros(1, 4)}})
    with pytest.raises(ValueError, match=r"does not run on the example inputs \(\(1, 4\)\): TypeError"):
        pdl.SwitchedNetwork(DictNet(), ["fc0"], example_inputs=torch.zeros(1, 4))

    class Wrapped(nn.Module):  # the fix the message names
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net({"x": x})

    switched = pdl.SwitchedNetwork(Wrapped(DictNet()), ["net.fc0"], example_inputs=torch.zeros(1, 4))
    assert switched.sizes == {"net.fc0": 6}
    # counting and the budget work on any example inputs Torch-Pruning accepts, a dict included
    macs = pdl.mac_model(DictNet(), ["fc0"], {"batch": {"x": torch.zeros(1, 4)}})
    assert macs({"fc0": 3}) == 3 * 4 + 3 * 2


class LayerNormStream(nn.Module):
    """A residual stream normalised over its channels (ConvNeXt's LayerNorm2d), and an inner conv."""

    def __init__(self):
        super().__init__()
        self.stem, self.conv1, self.conv2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 6, 3, padding=1), nn.Conv2d(6, 8, 1)
        self.norm, self.head = nn.LayerNorm(8), nn.Linear(8, 4)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.conv2(torch.relu(self.conv1(x)))
        x = self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.head(x.mean((2, 3)))


def test_a_group_normalised_over_its_channels_is_flagged_and_refused_before_a_fit():
    net = LayerNormStream().eval()
    x = torch.randn(1, 3, 8, 8)
    groups = {g.name: g for g in pdl.channel_groups(net, x)}
    assert "LayerNorm" not in str(groups["conv1"].problem) and groups["conv1"].problem is None  # the inner units: exact
    assert "normalisation over its channels (['norm'])" in groups["stem"].problem
    with pytest.raises(ValueError, match="'stem' cannot be pruned: a normalisation over its channels"):
        pdl.SwitchedNetwork(net, ["stem"], example_inputs=x)
    with pytest.raises(pdl.pruning.TrimMismatchError):  # and trim, called directly, refuses it too
        pdl.trim(net, {"stem": [0, 1, 2, 3]}, (3, 8, 8))
    small = pdl.trim(net, {"conv1": [0, 2, 4]}, (3, 8, 8))
    assert small.conv1.out_channels == 3


def test_a_registered_module_the_forward_never_calls_does_not_crash_the_groups():
    """Issue 42's repro: Linear-ReLU-Linear with an unused LayerNorm(16) of fc1's width."""
    class WithUnused(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.act, self.fc2 = torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)
            self.unused = torch.nn.LayerNorm(16)

        def forward(self, x):
            return self.fc2(self.act(self.fc1(x)))

    net, x = WithUnused(), torch.randn(3, 8)
    groups = {g.name: g.problem for g in pdl.channel_groups(net, x)}
    assert groups["fc1"] is None
    small = pdl.trim(net, pdl.keep_indices({"fc1": torch.rand(16)}, {"fc1": 8}), x)
    assert small.fc1.out_features == 8 and small.fc2.in_features == 8
