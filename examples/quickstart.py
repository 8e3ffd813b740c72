"""Quick start: fit a LeNet-5's switches, inspect them with ArviZ, prune to 1/4 of the MACs, fine-tune."""
import pyro_dirichlet as pdl
from pyro_dirichlet.models import build_model

train, test = pdl.load_mnist(train=True).subset(10000), pdl.load_mnist(train=False).subset(2000)
net = build_model("lenet5")                                # LeNet-5-Caffe; any nn.Module works
pdl.train(net, train, pdl.TrainConfig(epochs=2), progress=False)

sites = ["conv1", "conv2", "fc1:in", "fc1"]                # "fc1:in": fc1's 800 input features
switched = pdl.SwitchedNetwork(net, sites)                 # pdl.SwitchConfig(): prior Dir(0.5), form "auto" (s here)
guide, history = pdl.fit_switches(switched, train, pdl.FitConfig(epochs=1), progress=False)
idata = pdl.posterior_idata(guide)                         # ArviZ InferenceData, dims <site>_channel
print(pdl.summarize(idata).head(3))                        # az.summary: mean, sd, HDI
scores = pdl.posterior_means(idata)
links = pdl.input_links(net, sites, net.input_shape)       # {"fc1:in": ("conv2", 16)}: 16 features per filter
budget = pdl.count_macs(net, net.input_shape) // 4
counts = pdl.counts_for_budget(net, scores, budget, net.input_shape, links=links)   # per MAC, floor 10%
small = pdl.trim(net, pdl.keep_indices(scores, counts, links), net.input_shape)  # checked against the masked net
print(pdl.format_architecture(counts), pdl.count_macs(small, net.input_shape) <= budget)
pdl.train(small, train, pdl.TrainConfig(epochs=2), progress=False)
print(f"error {pdl.evaluate(net, test):.2f}% full, {pdl.evaluate(small, test):.2f}% pruned and fine-tuned")
