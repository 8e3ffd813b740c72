"""Torch-Pruning's pruner, ranking channels by the switch posterior (pdl.DirichletImportance)."""
import torch
import torch_pruning as tp

import pyro_dirichlet as pdl
from pyro_dirichlet.models import build_model

train = pdl.load_mnist(train=True).subset(1000)
net = build_model("lenet5")
pdl.train(net, train, pdl.TrainConfig(epochs=1), progress=False)
switched = pdl.SwitchedNetwork(net, ["conv1", "conv2", "fc1"])
guide, _ = pdl.fit_switches(switched, train, pdl.FitConfig(epochs=1), progress=False)
scores = pdl.posterior_means(pdl.posterior_idata(guide))
x = torch.zeros(1, 1, 28, 28)
pruner = tp.pruner.MetaPruner(net, x, importance=pdl.DirichletImportance(net, scores, x), pruning_ratio=0.5,
                              global_pruning=True, ignored_layers=[net.fc2])
pruner.step()
print(pdl.count_macs(net, (1, 28, 28)) < 2_293_000)       # True: a smaller dense LeNet-5
