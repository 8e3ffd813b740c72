"""Any network: torchvision's ResNet-18 with every prunable channel group switched, cut to half its MACs."""
import torch
import torchvision

import pyro_dirichlet as pdl

net = torchvision.models.resnet18(num_classes=10)
x = torch.zeros(1, 3, 32, 32)                              # example inputs: the network is traced once
sites = [g.name for g in pdl.channel_groups(net, x) if not g.is_output and g.problem is None]
switched = pdl.SwitchedNetwork(net, sites, example_inputs=x)
print(len(sites), switched.sizes["conv1"])                 # 12 groups (20 convs); conv1's group: 64 channels
scores = {site: torch.rand(k) for site, k in switched.sizes.items()}   # stand-in for fitted posterior means
budget = pdl.count_macs(net, (3, 32, 32)) // 2
counts = pdl.counts_for_budget(net, scores, budget, (3, 32, 32))       # mac_model: no trimming per step
small = pdl.trim(net, pdl.keep_indices(scores, counts), (3, 32, 32))
print(pdl.count_macs(small, (3, 32, 32)) <= budget)        # True
