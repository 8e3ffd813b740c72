"""Your own Pyro model: a network of your own with switches where you put them, fitted, pruned, fine-tuned."""
import arviz as az
import pyro
import pyro.distributions as dist
import torch
import torch.nn as nn

import pyro_dirichlet as pdl


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 16, 5), nn.Conv2d(16, 32, 5)
        self.fc1, self.fc2 = nn.Linear(32 * 4 * 4, 64), nn.Linear(64, 10)

    def forward(self, x, switch=lambda site, h: h):      # switch: where the pruning model scales channels
        h = torch.max_pool2d(torch.relu(switch("conv1", self.conv1(x))), 2)
        h = torch.max_pool2d(torch.relu(switch("conv2", self.conv2(h))), 2)
        return self.fc2(torch.relu(switch("fc1", self.fc1(h.flatten(1)))))


train, test = pdl.load_mnist(train=True).subset(10000), pdl.load_mnist(train=False).subset(2000)
torch.manual_seed(0)
net = SmallCNN()
pdl.train(net, train, pdl.TrainConfig(epochs=3), progress=False)


def model(x, y=None, idx=None, num_data=None):          # the pruning model: your network with switches
    B = x.shape[0]
    logits = net(x, lambda site, h: pdl.dirichlet_switch(site, h, data_batch=B))   # pdl.SwitchConfig()'s switch
    with pyro.plate("data", num_data or B, subsample=idx):
        pyro.sample("y", dist.Categorical(logits=pdl.unfold_particles(logits, B)), obs=y)


cfg = pdl.FitConfig(estimator="mc", num_samples=4, epochs=1)   # layer by layer, annealed
guide, history = pdl.fit_switches(model, train, cfg, progress=False)   # checkpoint=path: resumable
idata = pdl.posterior_idata(guide)
print(az.summary(idata, var_names=["conv1"], kind="stats").head(3))

x, y, _ = next(iter(train.batches(8)))
sites = pdl.switch_layers(model, net, x, y, example_inputs=x)       # {site: layer it switches}
scores = {sites[site]: mean for site, mean in pdl.posterior_means(idata).items()}
budget = pdl.count_macs(net, (1, 28, 28)) // 4
counts = pdl.counts_for_budget(net, scores, budget, (1, 28, 28))
small = pdl.trim(net, pdl.keep_indices(scores, counts), (1, 28, 28))
print(pdl.format_architecture(counts), pdl.evaluate(net, test), pdl.evaluate(small, test))
pdl.train(small, train, pdl.TrainConfig(epochs=2), progress=False)
print(pdl.count_macs(small, (1, 28, 28)) <= budget, pdl.evaluate(small, test))
