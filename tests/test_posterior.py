import numpy as np
import pytest
import torch

from pyro_dirichlet import CheckpointError, SwitchGuide, load_idata, posterior_idata, posterior_means, save_idata, summarize


@pytest.fixture
def guide():
    g = SwitchGuide({"conv1": 4, "fc.1": 6})
    with torch.no_grad():
        g.log_phi[0].copy_(torch.tensor([3.0, 1.0, 0.0, -1.0]))
        g.log_phi[1].uniform_(0, 2)
    return g


def test_inference_data_layout_and_means(guide):
    idata = posterior_idata(guide, num_draws=4000, seed=1)
    assert set(idata.posterior.data_vars) == {"conv1", "fc.1"}
    assert idata.posterior["conv1"].dims == ("chain", "draw", "conv1_channel")
    assert idata.posterior["fc.1"].shape == (1, 4000, 6)
    means = posterior_means(idata)
    phi = guide.phi("conv1").detach().double()
    assert torch.allclose(means["conv1"], phi / phi.sum())
    draws_mean = idata.posterior["conv1"].mean(("chain", "draw")).values
    assert np.allclose(draws_mean, means["conv1"].numpy(), atol=0.01)
    assert torch.argsort(means["conv1"], descending=True).tolist() == [0, 1, 2, 3]


def test_summary_has_mean_sd_hdi(guide):
    table = summarize(posterior_idata(guide, num_draws=500))
    assert {"mean", "sd", "hdi_3%", "hdi_97%"} <= set(table.columns)
    assert len(table) == 10
    assert (table["hdi_3%"] <= table["mean"]).all() and (table["mean"] <= table["hdi_97%"]).all()


def test_netcdf_round_trip(guide, tmp_path):
    idata = posterior_idata(guide, num_draws=100)
    save_idata(idata, tmp_path / "posterior.nc")
    back = load_idata(tmp_path / "posterior.nc")
    for name in ("conv1", "fc.1"):
        assert np.array_equal(back.posterior[name].values, idata.posterior[name].values)
        assert torch.allclose(posterior_means(back)[name], posterior_means(idata)[name])
    (tmp_path / "bad.nc").write_bytes(b"not netcdf")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_idata(tmp_path / "bad.nc")


def test_any_guide_gives_the_same_layout(bn_net):
    """A hand-written guide with Dirichlet sites and Pyro's AutoNormal, fitted on a switched
    network: one variable per switch site with a named channel dimension, phi where it exists."""
    import pyro
    import pyro.distributions as dist
    from pyro.infer import SVI, Trace_ELBO
    from pyro.infer.autoguide import AutoNormal

    import pyro_dirichlet as pdl

    switched = pdl.SwitchedNetwork(bn_net, ["conv1", "fc1"])
    x, y = torch.randn(8, *bn_net.input_shape), torch.randint(0, 3, (8,))

    def handwritten(x, y=None, **kwargs):
        for name, k in switched.sizes.items():
            phi = pyro.param(f"phi_{name}", torch.linspace(1.0, 4.0, k), constraint=dist.constraints.positive)
            pyro.sample(name, dist.Dirichlet(phi))

    pyro.clear_param_store()
    idata = posterior_idata(handwritten, num_draws=300, model_args=(x, y))
    assert set(idata.posterior.data_vars) == {"conv1", "fc1"}
    assert idata.posterior["conv1"].dims == ("chain", "draw", "conv1_channel")
    phi = pyro.param("phi_fc1").detach().double()
    assert torch.allclose(posterior_means(idata)["fc1"], phi / phi.sum())

    pyro.clear_param_store()
    auto = AutoNormal(switched.model)
    svi = SVI(switched.model, auto, pyro.optim.Adam({"lr": 0.01}), Trace_ELBO())
    for _ in range(3):
        svi.step(x, y)
    idata = posterior_idata(auto, num_draws=200, model_args=(x, y))
    assert set(idata.posterior.data_vars) == {"conv1", "fc1"}
    assert idata.posterior["fc1"].shape == (1, 200, switched.sizes["fc1"])
    assert "constant_data" not in idata.groups() or "fc1" not in idata.constant_data
    means = posterior_means(idata)
    assert torch.allclose(means["conv1"].sum(), torch.tensor(1.0, dtype=torch.float64))
    with pytest.raises(ValueError, match="no switch sites"):
        posterior_idata(lambda: None, num_draws=2)
