"""Every criterion in one registry, each cut to the same MAC budget."""
import pyro_dirichlet as pdl
from pyro_dirichlet.models import build_model

train = pdl.load_mnist(train=True).subset(1000)
net = build_model("lenet5")
pdl.train(net, train, pdl.TrainConfig(epochs=1), progress=False)
for name, criterion in pdl.CRITERIA.items():   # l1 l2 taylor fisher group-lasso data-free random dirichlet tp-*
    scores = criterion(net, ["conv1", "conv2", "fc1"], train, seed=0)
    counts = pdl.counts_for_budget(scores.network, scores, 300_000, net.input_shape)
    small = pdl.trim(scores.network, pdl.keep_indices(scores, counts), net.input_shape)
    print(name, scores.normalisation, pdl.format_architecture(counts), pdl.count_macs(small, net.input_shape) <= 300_000)
