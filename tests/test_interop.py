"""The switch posterior drives Torch-Pruning's pruners (DirichletImportance)."""
import pytest
import torch
import torch.nn as nn
import torch_pruning as tp
import torchvision

import pyro_dirichlet as pdl


class TwoConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 8, 3), nn.Conv2d(8, 6, 3)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        return self.head(torch.relu(self.conv2(torch.relu(self.conv1(x)))).mean((2, 3)))


X = torch.zeros(1, 1, 10, 10)


def posterior_means(sizes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {site: (s := torch.rand(k, generator=gen)) / s.sum() for site, k in sizes.items()}


def test_per_layer_pruning_keeps_the_highest_posterior_means():
    net = TwoConv()
    original = net.conv1.weight.detach().clone()
    scores = posterior_means({"conv1": 8, "conv2": 6})
    pruner = tp.pruner.MetaPruner(net, X, importance=pdl.DirichletImportance(net, scores, X), pruning_ratio=0.5,
                                  ignored_layers=[net.head])
    pruner.step()
    kept = sorted(torch.topk(scores["conv1"], 4).indices.tolist())
    assert net.conv1.out_channels == 4 and torch.equal(net.conv1.weight, original[kept])
    assert net.conv2.out_channels == 3 and net.head.out_features == 3
    with pytest.raises(ValueError, match=r"'conv[12]' has [34] channels but its posterior scores [68]"):
        tp.pruner.MetaPruner(net, X, importance=pdl.DirichletImportance(net, scores, X), pruning_ratio=0.5,
                             ignored_layers=[net.head]).step()


def test_unswitched_groups_are_left_alone_and_global_pruning_ranks_across_groups():
    net = TwoConv()
    scores = {"conv2": posterior_means({"conv2": 6})["conv2"]}
    tp.pruner.MetaPruner(net, X, importance=pdl.DirichletImportance(net, scores, X), pruning_ratio=0.5,
                         ignored_layers=[net.head]).step()
    assert (net.conv1.out_channels, net.conv2.out_channels) == (8, 3)
    resnet = torchvision.models.resnet18(num_classes=10)
    x = torch.zeros(1, 3, 32, 32)
    switched = pdl.SwitchedNetwork(resnet, ["conv1", "layer1.0.conv1", "layer4.1.conv1"], example_inputs=x)
    scores = posterior_means(switched.sizes)
    scores["layer4.1.conv1"] = torch.full((512,), 1 / 512)  # uniform: K E[s] = 1 everywhere
    scores["layer1.0.conv1"][:32] = 1e-6  # half of its channels switched off
    scores["layer1.0.conv1"] /= scores["layer1.0.conv1"].sum()
    tp.pruner.MetaPruner(resnet, x, importance=pdl.DirichletImportance(resnet, scores, x), pruning_ratio=0.05,
                         global_pruning=True, ignored_layers=[resnet.fc]).step()
    assert resnet.layer1[0].conv1.out_channels <= 40  # the switched-off channels went first
    assert resnet.layer2[0].conv1.out_channels == 128  # no switch: untouched
