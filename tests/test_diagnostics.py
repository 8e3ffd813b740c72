import pytest
import scipy.stats
import torch
import torch.nn.functional as F

from pyro_dirichlet.data import ArrayDataset
from pyro_dirichlet.diagnostics import kendall_tau, removal_costs, spearman


def test_rank_correlations_match_scipy():
    gen = torch.Generator().manual_seed(0)
    a = torch.randint(0, 6, (40,), generator=gen).float()  # with ties
    b = a + torch.randn(40, generator=gen)
    assert spearman(a, b) == pytest.approx(scipy.stats.spearmanr(a, b).statistic)
    assert kendall_tau(a, b) == pytest.approx(scipy.stats.kendalltau(a, b).statistic)
    assert spearman(a, -a) == pytest.approx(-1.0) and kendall_tau(b, b) == pytest.approx(1.0)


def test_removal_costs_match_removing_one_channel_by_hand(bn_net):
    with torch.no_grad():
        bn_net.fc2.weight[:, 3] = 0  # fc1's unit 3 is read by nobody
    gen = torch.Generator().manual_seed(0)
    data = ArrayDataset(torch.randint(0, 256, (30, 1, 12, 12), dtype=torch.uint8, generator=gen),
                        torch.randint(0, 3, (30,), generator=gen), (0.5,), (0.25,))
    costs = removal_costs(bn_net, ["conv2", "fc1", "fc2:in"], data, batch_size=16, chunk=5)
    assert [c.shape[0] for c in costs.values()] == [8, 12, 12]
    assert costs["fc1"][3] == 0 and costs["fc2:in"][3] == 0
    x, y = data.inputs(torch.arange(30)), data.labels
    full = F.cross_entropy(bn_net(x), y)
    handle = bn_net.bn2.register_forward_hook(lambda m, i, o: o * (torch.arange(8) != 5).float().view(1, 8, 1, 1))
    without = F.cross_entropy(bn_net(x), y)
    handle.remove()
    assert costs["conv2"][5].item() == pytest.approx((without - full).item(), abs=1e-5)
    assert costs["conv2"].abs().max() > 1e-3
