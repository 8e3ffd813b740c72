"""Convolutions of every dimension as sites (issue 42): Conv1d (depthwise too), Conv3d and transposed
convolutions are switched, grouped, counted and trimmed exactly as Conv2d is."""
import pytest
import torch
import torch.nn as nn

import pyro_dirichlet as pdl


class Head(nn.Module):
    def __init__(self, channels: int, classes: int = 3):
        super().__init__()
        self.fc = nn.Linear(channels, classes)

    def forward(self, x):
        return self.fc(x.flatten(2).mean(-1))


def conv1d_net():  # a sequence CNN: pointwise, depthwise, BatchNorm1d
    return nn.Sequential(nn.Conv1d(4, 16, 5, padding=2), nn.BatchNorm1d(16), nn.ReLU(),
                         nn.Conv1d(16, 16, 3, padding=1, groups=16), nn.BatchNorm1d(16), nn.ReLU(),
                         nn.Conv1d(16, 12, 1), nn.ReLU(), Head(12))


def conv3d_net():
    return nn.Sequential(nn.Conv3d(2, 8, 3, padding=1), nn.BatchNorm3d(8), nn.ReLU(), nn.Conv3d(8, 6, 3), nn.ReLU(),
                         Head(6))


def transposed_net():  # an up-sampling decoder
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.ConvTranspose2d(8, 10, 4, stride=2),
                         nn.BatchNorm2d(10), nn.ReLU(), nn.Conv2d(10, 6, 1),
                         nn.ReLU(), Head(6))


CASES = {"conv1d": (conv1d_net, (2, 4, 30)), "conv3d": (conv3d_net, (2, 2, 6, 6, 6)),
         "conv-transpose": (transposed_net, (2, 3, 13, 13))}


def _perturbed(net):
    g = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_(0, 0.1, generator=g)
            m.running_var.uniform_(0.5, 1.5, generator=g)
    return net.eval()


@pytest.mark.parametrize("case", CASES)
def test_every_conv_dimension_is_a_site_that_trims_exactly(case):
    make, shape = CASES[case]
    torch.manual_seed(0)
    net, x = _perturbed(make()), torch.randn(*shape)
    groups = pdl.channel_groups(net, x)
    sites = [g.name for g in groups if not g.is_output]
    assert sites and all(g.problem is None for g in groups)
    switched = pdl.SwitchedNetwork(net, sites, example_inputs=x)
    uniform = {s: torch.full((k,), 1.0 / k) for s, k in switched.sizes.items()}
    zero_one = {s: torch.eye(k)[0] for s, k in switched.sizes.items()}
    assert switched.forward(x, uniform).shape == net(x).shape
    assert not torch.allclose(switched.forward(x, zero_one), switched.forward(x, uniform))
    pruner = pdl.Pruner(net, sites, x)
    scores = {s: torch.rand(k, generator=torch.Generator().manual_seed(1)) for s, k in pruner.sizes.items()}
    counts = pruner.counts(scores, pruner.macs // 2)
    small = pruner.trim(scores, counts)  # raises unless it computes what the masked network does
    assert pdl.count_macs(small, x) == pdl.mac_model(net, sites, x)(counts) <= pruner.macs // 2
    assert pdl.count_params(small) == pdl.param_model(net, sites, x)(counts)
    for site, module in zip(sites, [small.get_submodule(s) for s in sites]):
        assert pdl.sites.layer_width(module) == counts[site]


class Gated(nn.Module):
    """A pointwise conv to 2C channels, halved by a GLU (or a chunk and a sigmoid gate), then a conv."""

    def __init__(self, chunk: bool):
        super().__init__()
        self.chunk = chunk
        self.expand, self.glu, self.conv, self.head = nn.Conv1d(4, 32, 1), nn.GLU(dim=1), nn.Conv1d(16, 8, 3), Head(8)

    def forward(self, x):
        h = self.expand(x)
        if self.chunk:
            value, gate = h.chunk(2, dim=1)
            h = value * torch.sigmoid(gate)
        else:
            h = self.glu(h)
        return self.head(torch.relu(self.conv(h)))


@pytest.mark.parametrize("chunk", [False, True], ids=["nn.GLU", "chunk-gate"])
def test_a_glu_producer_is_refused_at_channel_groups_naming_the_glu_and_the_rest_prunes(chunk):
    torch.manual_seed(0)
    net, x = Gated(chunk).eval(), torch.randn(2, 4, 20)
    problems = {g.name: g.problem for g in pdl.channel_groups(net, x)}
    assert ("a chunk/split at offsets [0, 16, 32] whose parts multiply" if chunk else "a GLU") in problems["expand"]
    assert "'expand'" in problems["expand"] and problems["conv"] is None
    with pytest.raises(ValueError, match="cannot be pruned"):
        pdl.SwitchedNetwork(net, ["expand"], example_inputs=x)
    pruner = pdl.Pruner(net, ["conv"], x)
    small = pruner.trim({"conv": torch.arange(8.0)}, {"conv": 5})
    assert small.conv.out_channels == 5
