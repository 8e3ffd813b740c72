"""fit_sequential: each site fitted on the network with the earlier sites pruned."""
import pytest
import torch

import pyro_dirichlet as pdl
from test_fit import toy_data


def fitted_means(net, site, data, cfg):
    guide, _ = pdl.fit_switches(pdl.SwitchedNetwork(net, [site]), data, cfg, progress=False)
    phi = guide.phi(site).detach()
    return phi / phi.sum()


def test_each_site_is_fitted_in_the_network_pruned_before_it(bn_net, tmp_path):
    data, cfg, counts = toy_data(), pdl.FitConfig(epochs=2, batch_size=50, lr=0.1), {"conv1": 3, "fc1": 5}
    means = pdl.fit_sequential(bn_net, ["conv1", "fc1"], counts, data, cfg, checkpoint_dir=tmp_path)
    assert torch.allclose(means["conv1"], fitted_means(bn_net, "conv1", data, cfg))  # the first: the whole network
    pruned = pdl.trim(bn_net, pdl.keep_indices(means, {"conv1": 3}))
    assert torch.allclose(means["fc1"], fitted_means(pruned, "fc1", data, cfg))  # the second: conv1 already pruned
    assert not torch.allclose(means["fc1"], fitted_means(bn_net, "fc1", data, cfg), atol=1e-3)
    assert means["fc1"].shape == (12,) and means["fc1"].sum().item() == pytest.approx(1.0)
    again = pdl.fit_sequential(bn_net, ["conv1", "fc1"], counts, data, cfg, checkpoint_dir=tmp_path)  # resumed
    assert all(torch.equal(again[s], means[s]) for s in means)
    pdl.fit_sequential(bn_net, ["conv1", "fc1"], {"conv1": 2, "fc1": 5}, data, cfg, checkpoint_dir=tmp_path)
    assert len(list(tmp_path.glob("site-1-*.ckpt"))) == 2  # another context, another fit, never the stale one


def test_an_input_site_after_its_producer_is_refused(bn_net):
    with pytest.raises(ValueError, match="'fc2:in' has 5 channels once \\['fc1'\\] are pruned, not 12"):
        pdl.fit_sequential(bn_net, ["fc1", "fc2:in"], {"fc1": 5, "fc2:in": 6}, toy_data(),
                           pdl.FitConfig(epochs=1, batch_size=50))
