"""Fitting a Pyro model the library did not write (pyro_dirichlet.user_model)."""
import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.nn as nn

import pyro_dirichlet as pdl
from pyro_dirichlet import epochs as epochs_module


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3)
        self.bn1 = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 8, 3)
        self.fc = nn.Linear(8 * 4 * 4, 3)
        self.input_shape = (1, 8, 8)

    def features(self, x, switch=lambda name, h: h):
        h = torch.relu(switch("conv1", self.bn1(self.conv1(x))))
        return torch.relu(switch("conv2", self.conv2(h))).flatten(1)

    def forward(self, x):
        return self.fc(self.features(x))


def pyro_model_of(net, switch=pdl.SwitchConfig()):
    """The user's model: the network with a Dirichlet switch after conv1's BatchNorm and conv2."""
    def model(x, y=None, idx=None, num_data=None):
        B = x.shape[0]
        logits = net.fc(net.features(x, lambda name, h: pdl.dirichlet_switch(name, h, switch, data_batch=B)))
        with pyro.plate("data", num_data or B, subsample=idx):
            return pyro.sample("y", dist.Categorical(logits=pdl.unfold_particles(logits, B)), obs=y)
    return model


@pytest.fixture
def problem():
    torch.manual_seed(0)
    net = SmallCNN().eval()
    with torch.no_grad():
        net.bn1.running_mean.uniform_(-0.1, 0.1)
    images = torch.randint(0, 256, (96, 1, 8, 8), dtype=torch.uint8)
    labels = net(images.float() / 255).argmax(1)  # labels the network can fit: switches matter
    return net, pdl.ArrayDataset(images, labels, mean=(0.0,), std=(1.0,))


@pytest.mark.parametrize("estimator,mode,form", [("mean", "layerwise", "s"), ("mean", "layerwise", "Ks"),
                                                ("mc", "joint", "s"), ("mean", "layerwise", "bn")])
def test_own_model_fits_like_the_equivalent_switched_network(problem, estimator, mode, form):
    """Layer by layer, the sites not being fitted pass through unscaled in both (under "s" a
    fixed 1/K would shrink them K-fold, under "bn" re-standardise them)."""
    net, data = problem
    switch = pdl.SwitchConfig(form=form)
    cfg = pdl.FitConfig(estimator=estimator, mode=mode, num_samples=3, epochs=2, batch_size=32, lr=0.1)
    guide_own, history_own = pdl.fit_switches(pyro_model_of(net, switch), data, cfg, progress=False)
    switched = pdl.SwitchedNetwork(net, ["conv1", "conv2"], switch)
    guide_lib, history_lib = pdl.fit_switches(switched, data, cfg, progress=False)
    assert guide_own.names == guide_lib.names == ["conv1", "conv2"]
    losses = [h["loss"] for h in history_own]
    assert losses == pytest.approx([h["loss"] for h in history_lib], rel=1e-5)
    assert len(set(losses)) == len(losses)  # the fit moved: a history that stands still would match trivially
    for name in guide_own.names:
        assert torch.allclose(guide_own.phi(name), guide_lib.phi(name), rtol=1e-4)
        assert not torch.allclose(guide_own.phi(name), torch.full_like(guide_own.phi(name), 10.0))


def test_a_model_without_idx_or_num_data_is_scaled_to_the_data_set(problem):
    net, data = problem

    def plain(x, y):  # the model most tutorials write: a plate over the batch, no subsampling
        logits = net.fc(net.features(x, lambda name, h: pdl.dirichlet_switch(name, h)))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("y", dist.Categorical(logits=logits), obs=y)

    cfg = pdl.FitConfig(epochs=1, batch_size=32)
    _, scaled = pdl.fit_switches(plain, data, cfg, progress=False)
    _, subsampled = pdl.fit_switches(pyro_model_of(net), data, cfg, progress=False)
    assert [h["loss"] for h in scaled] == pytest.approx([h["loss"] for h in subsampled], rel=1e-6)


def test_own_model_resumes_from_its_checkpoint_exactly(problem, tmp_path, monkeypatch):
    net, data = problem
    cfg = pdl.FitConfig(estimator="mc", num_samples=2, epochs=2, batch_size=32)
    _, uninterrupted = pdl.fit_switches(pyro_model_of(net), data, cfg, progress=False)
    real_save, saves = epochs_module.save_torch, []

    def save_then_stop(state, path):
        real_save(state, path)
        saves.append(path)
        if len(saves) == 3:  # mid-way: conv1 done, conv2's first epoch done
            raise KeyboardInterrupt

    monkeypatch.setattr(epochs_module, "save_torch", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        pdl.fit_switches(pyro_model_of(net), data, cfg, checkpoint=tmp_path / "fit.ckpt", progress=False)
    monkeypatch.setattr(epochs_module, "save_torch", real_save)
    _, resumed = pdl.fit_switches(pyro_model_of(net), data, cfg, checkpoint=tmp_path / "fit.ckpt", progress=False)
    assert [h["loss"] for h in resumed] == [h["loss"] for h in uninterrupted]
    with pytest.raises(pdl.CheckpointError, match="different run"):
        pdl.fit_switches(pyro_model_of(net), data, pdl.FitConfig(epochs=1, batch_size=32),
                         checkpoint=tmp_path / "fit.ckpt", progress=False)


def test_sites_map_to_the_layers_they_switch(problem):
    net, data = problem
    x, y, idx = next(iter(data.batches(4)))
    assert pdl.switch_layers(pyro_model_of(net), net, x, y) == {"conv1": "conv1", "conv2": "conv2"}

    def after_relu(x, y):
        h = pdl.dirichlet_switch("late", torch.relu(net.conv1(x)))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("y", dist.Categorical(logits=net.fc(torch.relu(net.conv2(h)).flatten(1))), obs=y)

    with pytest.raises(ValueError, match="no conv/linear/BatchNorm layer"):
        pdl.switch_layers(after_relu, net, x, y)


def test_models_the_library_cannot_fit_are_refused(problem):
    net, data = problem
    cfg = pdl.FitConfig(epochs=1)

    def with_a_normal(x, y):
        pyro.sample("w", dist.Normal(0.0, 1.0))
        pyro_model_of(net)(x, y)

    def without_switches(x, y):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("y", dist.Categorical(logits=net(x)), obs=y)

    def observing_nothing(x, y):
        pdl.dirichlet_switch("conv1", net.conv1(x))

    for model, message in [(with_a_normal, "not Dirichlet switches"), (without_switches, "no Dirichlet switch"),
                           (observing_nothing, "observes nothing")]:
        with pytest.raises(ValueError, match=message):
            pdl.fit_switches(model, data, cfg, progress=False)


def test_unfold_particles():
    t = torch.arange(12.0).reshape(6, 2)
    assert pdl.unfold_particles(t, 6) is t
    assert torch.equal(pdl.unfold_particles(t, 3), t.reshape(2, 3, 2))
    with pytest.raises(ValueError, match="particles"):
        pdl.unfold_particles(t, 4)


class PyroCNN(pyro.nn.PyroModule):
    """A CNN written as a PyroModule that samples its own switch: its weights live in Pyro's param store."""

    def __init__(self):
        super().__init__()
        self.conv = pyro.nn.PyroModule[nn.Conv2d](1, 4, 3)
        self.fc = pyro.nn.PyroModule[nn.Linear](4 * 6 * 6, 3)

    def forward(self, x, y=None, idx=None, num_data=None):
        B = x.shape[0]
        h = pdl.dirichlet_switch("conv", torch.relu(self.conv(x)), data_batch=B)
        logits = pdl.unfold_particles(self.fc(h.flatten(1)), B)
        with pyro.plate("data", num_data or B, subsample=idx):
            return pyro.sample("y", dist.Categorical(logits=logits), obs=y)


def test_fitting_a_pyro_module_trains_its_switches_and_nothing_else(problem):
    _, data = problem
    torch.manual_seed(0)
    model = PyroCNN()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    guide, history = pdl.fit_switches(model, data, pdl.FitConfig(epochs=3, batch_size=32, lr=0.2), progress=False)
    after = dict(model.named_parameters())
    assert before and all(torch.equal(before[name], after[name].detach()) for name in before)  # weights untouched
    assert guide.names == ["conv"] and not torch.allclose(guide.phi("conv"), guide.phi("conv").mean())  # it fitted
    assert history[-1]["loss"] < history[0]["loss"]


def test_a_pyro_model_that_returns_samples_is_refused_by_the_graph_functions_with_the_fix():
    """PyroCNN's forward returns sampled labels: no layer reaches them through autograd. channel_groups
    and trim say so (they used to return nothing, or fail on a missing graph node); its layers work."""
    model = PyroCNN().eval()
    x = torch.randn(1, 1, 8, 8)
    with pytest.raises(ValueError, match="reaches its output through autograd.*the logits"):
        pdl.channel_groups(model, x)
    with pytest.raises(ValueError, match="reaches its output through autograd"):
        pdl.trim(model, {"conv": [0, 1]}, (1, 8, 8))
