import json

import pytest
import torch
import torch.nn as nn

import pyro_dirichlet as pdl
from pyro_dirichlet.inference.cli import main
from pyro_dirichlet.inference.plain_reference import plain_fit
from pyro_dirichlet.inference.synthetic import StudyConfig, compare, switched
from pyro_dirichlet.simulate import SWITCHED_LAYER, simulate
from pyro_dirichlet.switches import scale_channels, scaled_linear

ALPHA0 = 0.1


@pytest.fixture(scope="module")
def problem():
    return simulate(100, 20, num_data=2000, seed=0)


def test_simulation_is_a_seeded_balanced_binary_problem(problem):
    x, y = problem.data.features, problem.data.labels
    assert x.shape == (2000, 100) and y.shape == (2000,)
    assert set(y.unique().tolist()) == {0.0, 1.0} and 0.35 < y.mean() < 0.65
    assert torch.isclose(problem.true_switch.sum(), torch.tensor(1.0)) and (problem.true_switch >= 0).all()
    assert (problem.true_switch > 0.05).sum() <= 5  # sparse: a few units matter
    assert x[1000:].mean() == pytest.approx(2.0, abs=0.05) and x[:1000].mean() == pytest.approx(0.0, abs=0.05)
    again = simulate(100, 20, num_data=2000, seed=0)
    assert torch.equal(again.data.labels, y) and torch.equal(again.true_switch, problem.true_switch)


@pytest.fixture(scope="module")
def fitted(problem):
    results = {}
    for estimator in ("mc", "mean"):
        cfg = pdl.FitConfig(estimator=estimator, num_samples=100, epochs=8, anneal_epochs=0)
        guide, _ = pdl.fit_switches(switched(problem, ALPHA0), problem.data, cfg, progress=False)
        results[estimator] = compare(problem.true_switch, pdl.summarize(pdl.posterior_idata(guide)))
    return results


@pytest.mark.parametrize("estimator", ["mc", "mean"])
def test_posterior_means_track_the_true_switch(fitted, estimator):
    # chance level: |corr| of 20 unrelated values is below 0.45 with 95% probability
    assert fitted[estimator]["corr"] > 0.8


def test_estimators_agree_on_the_important_units(problem, fitted):
    top = {e: set(torch.tensor(fitted[e]["posterior_mean"]).argsort(descending=True)[:3].tolist()) for e in fitted}
    assert top["mc"] == top["mean"]
    assert int(problem.true_switch.argmax()) in top["mc"]


@pytest.mark.parametrize("estimator,samples", [("mean", 1), ("mc", 30)])
def test_plain_pytorch_reference_is_the_same_computation(problem, estimator, samples):
    data = pdl.FeatureDataset(problem.data.features[::5], problem.data.labels[::5])
    cfg = pdl.FitConfig(estimator=estimator, num_samples=samples, epochs=2, anneal_epochs=0, min_steps=1)  # batches of 100
    guide, history = pdl.fit_switches(switched(problem, ALPHA0), data, cfg, progress=False)
    phi, plain_history = plain_fit(problem.net, data, estimator, samples, ALPHA0, epochs=2)
    for pyro_epoch, plain_epoch in zip(history, plain_history):
        assert pyro_epoch["loss"] == pytest.approx(plain_epoch["loss"], rel=1e-5)
    assert torch.allclose(guide.phi(SWITCHED_LAYER).detach(), phi, rtol=1e-3)


def test_scaled_linear_equals_scaling_the_activations():
    torch.manual_seed(0)
    linear = nn.Linear(6, 3)
    s = torch.distributions.Dirichlet(torch.ones(6)).sample((4,))  # P = 4 particles
    for u in (torch.randn(5, 6), torch.randn(4 * 5, 6)):  # unfolded (B, K) and folded (P * B, K)
        expected = linear(scale_channels(u, s, data_batch=5))
        assert torch.allclose(scaled_linear(linear, u, s, data_batch=5), expected, atol=1e-6)


def test_switch_folds_into_the_output_layer_only_where_it_is_exact(problem):
    net = switched(problem, ALPHA0)
    x = problem.data.features[:50]
    s = {SWITCHED_LAYER: torch.distributions.Dirichlet(torch.ones(20)).sample((7,))}
    folded, naive = net.forward(x, s, fold_into_linear=True), net.forward(x, s, fold_into_linear=False)
    assert net._consumers == {SWITCHED_LAYER: problem.net.out}
    assert folded.shape == (7 * 50, 1) and torch.allclose(folded, naive, atol=1e-5)

    class SkipSum(nn.Module):  # the switched output also feeds another layer: folding into one would be wrong
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.skip = nn.Linear(4, 5), nn.Linear(5, 1), nn.Linear(5, 1)

        def forward(self, x):
            h = self.fc1(x)
            return self.fc2(h) + self.skip(h)

    skip = pdl.SwitchedNetwork(SkipSum(), ["fc1"], likelihood="bernoulli", example_inputs=torch.randn(1, 4))
    x = torch.randn(8, 4)
    s = {"fc1": torch.distributions.Dirichlet(torch.ones(5)).sample((3,))}
    assert torch.allclose(skip.forward(x, s), skip.forward(x, s, fold_into_linear=False))
    assert skip._consumers == {}


def test_bernoulli_needs_one_logit(problem):
    net = pdl.SwitchedNetwork(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)), ["0"],
                              likelihood="bernoulli", example_inputs=torch.randn(1, 4))
    with pytest.raises(ValueError, match=r"bernoulli turns the network's outputs \(5, 2\) .* targets of shape \(\)"):
        net.model(torch.randn(5, 4), torch.ones(5))
    with pytest.raises(ValueError, match="likelihood must be one of"):
        pdl.SwitchedNetwork(problem.net, [SWITCHED_LAYER], likelihood="gaussian")


def test_synthetic_command_writes_results(tmp_path, capsys):
    argv = ["synthetic", "--sizes", "40x8", "--epochs", "2", "--samples", "20", "--timing-size", "60x12",
            "--timing-epochs", "1", "--naive-epochs", "1", "--results", str(tmp_path / "results"),
            "--run-dir", str(tmp_path / "run"), "--device", "cpu", "--no-progress"]
    assert main(argv) == 0
    result = json.loads((tmp_path / "results" / "synthetic.json").read_text())
    assert result["device"].startswith("cpu") and result["command"].startswith("pyro-dirichlet")
    (row,) = result["sizes"]
    assert (row["d_x"], row["d_h"]) == (40, 8)
    for estimator in ("mc", "mean"):
        assert set(row[estimator]) >= {"corr", "rmse", "mean_sd"} and len(row[estimator]["posterior_mean"]) == 8
    timing = result["timing"]
    assert timing["mc_samples"] == 20 and all(
        timing[k] > 0 for k in ("mc_epoch_s", "mean_epoch_s", "mc_plain_epoch_s", "mean_plain_epoch_s"))
    assert (tmp_path / "results" / "synthetic_40x8.png").stat().st_size > 10_000
    assert json.loads(capsys.readouterr().out)["sizes"][0]["d_h"] == 8
    assert main(argv[:2] + ["40by8"]) == 2  # a bad size is a clear error, exit 2
    assert "not D_XxD_H" in capsys.readouterr().err


def test_study_config_rejects_bad_sizes():
    with pytest.raises(ValueError, match="d_h >= 2"):
        simulate(10, 1)
    assert StudyConfig().sizes == ((100, 20), (500, 200), (1000, 500))
