"""A timm ViT on MNIST: switch every block's heads and MLP units, read the heads' posterior,
prune to half the MACs (attention included), fine-tune. Needs `pip install .[timm]`."""
import timm
import torch

import pyro_dirichlet as pdl

train, test = pdl.load_mnist(train=True).subset(10000), pdl.load_mnist(train=False).subset(2000)
torch.manual_seed(0)                                          # the ViT's initialisation
net = timm.models.VisionTransformer(img_size=28, patch_size=4, in_chans=1, num_classes=10, embed_dim=64,
                                    depth=2, num_heads=4, mlp_ratio=2.0, qkv_bias=True)
net.input_shape = (1, 28, 28)                                 # one input's shape, for the library's steps
pdl.train(net, train, pdl.TrainConfig(epochs=10, lr=2e-3, schedule="onecycle"), progress=False)

sites = ["blocks.0.attn:heads", "blocks.1.attn:heads", "blocks.0.mlp.fc1", "blocks.1.mlp.fc1"]
switched = pdl.SwitchedNetwork(net, sites)                    # a head's switch scales its output before proj
guide, _ = pdl.fit_switches(switched, train, pdl.FitConfig(epochs=1), progress=False)
idata = pdl.posterior_idata(guide)
print(pdl.summarize(idata).loc[[f"blocks.0.attn:heads[{h}]" for h in range(4)], ["mean", "sd"]].round(3))
scores = pdl.posterior_means(idata)
counts = pdl.counts_for_budget(net, scores, pdl.count_macs(net) // 2, per_mac=False)  # by score: per MAC cuts heads first
small = pdl.trim(net, pdl.keep_indices(scores, counts))       # qkv rows, proj columns, num_heads: checked
print([block.attn.num_heads for block in small.blocks], pdl.count_macs(small) <= pdl.count_macs(net) // 2)
pdl.train(small, train, pdl.TrainConfig(epochs=2, lr=5e-4), progress=False)
print(f"error {pdl.evaluate(net, test):.2f}% full, {pdl.evaluate(small, test):.2f}% pruned and fine-tuned")
