import numpy as np
import pytest
import torch

from pyro_dirichlet import CheckpointError, SwitchGuide, load_idata, posterior_idata, posterior_means, save_idata, summarize


@pytest.fixture
def guide():
    g = SwitchGuide({"conv1": 4, "fc.1": 6}, "mean")
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
