"""Run by tests/test_distributed.py under ``torchrun --nproc_per_node 2`` (gloo on CPU).

Each rank writes ``<out>/rank<r>.pt``: its first minibatch's indices and loss at the
initial guide, the fitted switch concentrations, and the state of a network trained with DDP.
"""
import sys

import pyro
import pyro.distributions as dist
import torch

import pyro_dirichlet as pdl
from pyro_dirichlet import distributed
from pyro_dirichlet.fit import epoch_seed
from pyro_dirichlet.models import build_model
from pyro_dirichlet.simulate import simulate

BATCH = 20  # per rank
SWITCH = pdl.SwitchConfig(alpha0=0.1, form="Ks")  # the simulation's own switch


def own_model(net):
    """The switched network above written as a user's own Pyro model."""
    def model(x, y=None, idx=None, num_data=None):
        h = torch.relu(pdl.dirichlet_switch("hidden0", net.hidden0(x), SWITCH))
        with pyro.plate("data", num_data or x.shape[0], subsample=idx):
            pyro.sample("y", dist.Bernoulli(logits=pdl.unfold_particles(net.out(h), len(x)).squeeze(-1)), obs=y)
    return model


def main(out: str) -> None:
    distributed.init()
    problem = simulate(40, 8, num_data=400, seed=0)
    switched = pdl.SwitchedNetwork(problem.net, ["hidden0"], SWITCH, likelihood="bernoulli")
    data = problem.data
    gen = torch.Generator().manual_seed(epoch_seed(0, 0, 0) + 1)  # fit_switches' first shuffling generator
    x, y, idx = next(data.batches(BATCH, shuffle=True, generator=gen, shard=distributed.shard()))
    first_loss = pdl.estimators.MeanSwitchELBO(max_plate_nesting=1).loss(
        switched.model, pdl.SwitchGuide(switched.sizes), x, y, idx=idx, num_data=len(data))
    cfg = pdl.FitConfig(estimator="mean", epochs=3, batch_size=BATCH, anneal_epochs=0)
    guide, history = pdl.fit_switches(switched, data, cfg, progress=False)
    own_guide, own_history = pdl.fit_switches(own_model(problem.net), data, cfg, progress=False)
    torch.manual_seed(0)
    net = build_model("mlp", [6], in_features=40, num_classes=2)
    labelled = pdl.FeatureDataset(data.features, data.labels.long())
    pdl.train(net, labelled, pdl.TrainConfig(epochs=2, batch_size=BATCH), progress=False)
    torch.save({"first_idx": idx, "first_loss": first_loss, "phi": guide.phi("hidden0").detach(),
                "history": history, "net": net.state_dict(),
                "own_phi": own_guide.phi("hidden0").detach(), "own_history": own_history}, f"{out}/rank{distributed.rank()}.pt")


if __name__ == "__main__":
    main(sys.argv[1])
