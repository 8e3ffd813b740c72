"""A user's loss everywhere (issue 42): dense per-frame targets through the switch fit, the data
criteria, ``train`` and ``evaluate``; shapes the likelihood cannot explain get a message naming
them; fits sized in optimiser steps."""
import math

import pyro.distributions as dist
import pytest
import torch
import torch.nn as nn

import pyro_dirichlet as pdl
from pyro_dirichlet.likelihoods import log_prob


class Frames(nn.Module):
    """``(B, 4, T)`` -> per-frame logits ``(B, T, 5)``."""

    def __init__(self):
        super().__init__()
        self.a, self.bn, self.b = nn.Conv1d(4, 16, 3, padding=1), nn.BatchNorm1d(16), nn.Conv1d(16, 5, 1)

    def forward(self, x):
        return self.b(torch.relu(self.bn(self.a(x)))).transpose(1, 2)


@pytest.fixture
def frames():
    torch.manual_seed(0)
    x = torch.randn(36, 4, 12)
    return Frames().eval(), pdl.FeatureDataset(x, (torch.rand(36, 12, 5) > 0.5).float())


def test_dense_bernoulli_is_the_summed_per_frame_bce(frames):
    net, data = frames
    out = net(data.features[:3])
    bce = nn.functional.binary_cross_entropy_with_logits(out, data.labels[:3], reduction="none").sum((1, 2))
    assert torch.allclose(log_prob("bernoulli", out, data.labels[:3]), -bce, atol=1e-5)
    assert torch.allclose(pdl.nll("bernoulli")(out, data.labels[:3]), bce.mean(), atol=1e-5)
    own = lambda o: dist.Bernoulli(logits=o).to_event(2)  # noqa: E731  a user's own, the same model
    assert torch.allclose(log_prob(own, out, data.labels[:3]), -bce, atol=1e-5)


@pytest.mark.parametrize("name", ["taylor", "fisher", "tp-taylor", "tp-hessian", "dirichlet"])
def test_every_data_criterion_takes_the_likelihood(frames, name):
    net, data = frames
    scores = pdl.CRITERIA[name](net, ["a"], data, likelihood="bernoulli")
    assert scores["a"].shape == (16,) and torch.isfinite(scores["a"]).all() and scores["a"].std() > 0
    with pytest.raises(ValueError, match=r"categorical turns the network's outputs \(\d+, 12, 5\).*Pass likelihood="):
        pdl.CRITERIA[name](net, ["a"], data)  # the default, categorical, cannot explain 0/1 frames


def test_the_fit_train_and_evaluate_take_a_loss_of_your_own(frames):
    net, data = frames
    switched = pdl.SwitchedNetwork(net, ["a"], likelihood="bernoulli", example_inputs=data.features[:2])
    guide, history = pdl.fit_switches(switched, data, pdl.FitConfig(epochs=2), progress=False)
    assert len(history) == 2 and guide.phi("a").std() > 1e-3  # the posterior moved from its uniform start
    with pytest.raises(ValueError, match=r"targets of shape \(12, 5\)"):
        pdl.fit_switches(pdl.SwitchedNetwork(net, ["a"], example_inputs=data.features[:2]), data, pdl.FitConfig(),
                         progress=False)
    frame_error = lambda o, y: 100 * ((o > 0).float() != y).float().mean((1, 2))  # noqa: E731
    before = pdl.evaluate(net, data, metric=frame_error)
    pdl.train(net, data, pdl.TrainConfig(epochs=5, batch_size=6, lr=0.01), progress=False, loss=pdl.nll("bernoulli"))
    assert pdl.evaluate(net, data, metric=frame_error) < before
    with pytest.raises(ValueError, match="one value an example"):
        pdl.evaluate(net, data, metric=lambda o, y: (o > 0).float())
    gaussian = pdl.SwitchedNetwork(net, ["a"], likelihood=pdl.Gaussian(0.5), example_inputs=data.features[:2])
    real = pdl.FeatureDataset(data.features, torch.randn(36, 12, 5))
    assert math.isfinite(pdl.fit_switches(gaussian, real, pdl.FitConfig(epochs=1), progress=False)[1][0]["loss"])


def test_a_fit_is_sized_in_steps():
    cfg = pdl.FitConfig()
    assert cfg.plan(50_000) == {"batch_size": 100, "steps_per_epoch": 500, "steps_per_stage": 1500}
    assert cfg.plan(36) == {"batch_size": 3, "steps_per_epoch": 12, "steps_per_stage": 36}
    assert cfg.plan(5)["steps_per_stage"] == 15  # batches of one: still fewer than min_steps
    net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
    data = pdl.FeatureDataset(torch.randn(5, 3), torch.tensor([0, 1, 0, 1, 1]))
    with pytest.warns(UserWarning, match=r"only 15 optimiser step\(s\) a stage .* FitConfig\(epochs=6\)"):
        pdl.fit_switches(pdl.SwitchedNetwork(net, ["0"], example_inputs=data.features[:1]), data, cfg, progress=False)


def test_a_loss_of_your_own_keys_the_checkpoint_by_its_code():
    from pyro_dirichlet.training import loss_name

    l1, l2 = (lambda o, y: (o - y).abs().mean()), (lambda o, y: (o - y).pow(2).mean())
    assert loss_name(l1) != loss_name(l2) and loss_name(pdl.nll("bernoulli")) == "nll(bernoulli)"
