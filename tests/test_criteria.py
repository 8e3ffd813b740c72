import json

import pytest
import torch

import pyro_dirichlet as pdl
from pyro_dirichlet import criteria
from pyro_dirichlet.data import ArrayDataset
from pyro_dirichlet.inference.cli import main
from pyro_dirichlet.inference.compare import budget_counts, uniform_counts
from pyro_dirichlet.models import build_model

LAYERS = ("conv1", "conv2", "fc1", "fc2")
NEXT = {"conv1": "conv2", "conv2": "fc1", "fc1": "fc2", "fc2": "fc3"}
DEAD = 2  # the channel made useless in every layer


def tiny_data(n=64):
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, 12, 12), dtype=torch.uint8, generator=gen)
    return ArrayDataset(images, torch.randint(0, 3, (n,), generator=gen), (0.5,), (0.25,))


def silence(net, how):
    """Zero channel DEAD's own weights ("weights") or its outgoing weights ("output")."""
    with torch.no_grad():
        for name in LAYERS:
            if how == "weights":
                net.get_submodule(name).weight[DEAD] = 0
            else:
                w = net.get_submodule(NEXT[name]).weight
                K = net.get_submodule(name).weight.shape[0]
                w.view(w.shape[0], K, -1)[:, DEAD] = 0
    return net


def scores_for(method, net):
    data = tiny_data()
    if method in ("l1", "l2"):
        return criteria.norm_scores(silence(net, "weights"), LAYERS, p=int(method[1]))
    if method in ("taylor", "fisher"):
        return criteria.gradient_scores(silence(net, "output"), LAYERS, data, method, num_batches=3, batch_size=16)
    if method == "data-free":
        return criteria.data_free_scores(silence(net, "output"), LAYERS, net.input_shape)
    if method == "group-lasso":
        retrained = criteria.group_lasso_retrain(silence(net, "weights"), LAYERS, data,
                                                 pdl.TrainConfig(epochs=2, batch_size=16), strength=0.05)
        return criteria.norm_scores(retrained, LAYERS, p=2)
    raise AssertionError(method)


@pytest.mark.parametrize("method", ["l1", "l2", "taylor", "fisher", "data-free", "group-lasso"])
def test_a_useless_channel_ranks_last(method, bn_net):
    scores = scores_for(method, bn_net)
    assert list(scores) == list(LAYERS)
    for name, s in scores.items():
        assert s.shape == (bn_net.get_submodule(name).weight.shape[0],) and torch.isfinite(s).all()
        assert s[DEAD] == s.min() and s.max() > s[DEAD], (method, name, s)  # last (ties at 0: dead ReLUs)


def test_random_scores_are_seeded(bn_net):
    a, b = criteria.random_scores(bn_net, LAYERS, 0), criteria.random_scores(bn_net, LAYERS, 0)
    c = criteria.random_scores(bn_net, LAYERS, 1)
    assert all(torch.equal(a[n], b[n]) for n in LAYERS) and not torch.equal(a["fc1"], c["fc1"])


def test_data_free_refuses_a_last_layer(bn_net):
    with pytest.raises(ValueError, match="after 'fc3'"):
        criteria.data_free_scores(bn_net, ["fc3"], bn_net.input_shape)


@pytest.mark.parametrize("method", ["l1", "l2", "taylor", "fisher", "data-free", "random"])
def test_input_site_scores(method, bn_net):
    """fc2's input features: one score each, and a feature fc2 ignores ranks last."""
    with torch.no_grad():
        bn_net.fc2.weight[:, DEAD] = 0
    sites = ["fc2:in", "conv2"]
    if method == "random":
        scores = criteria.random_scores(bn_net, sites, 0)
    elif method in ("l1", "l2"):
        scores = criteria.norm_scores(bn_net, sites, p=int(method[1]))
    elif method == "data-free":
        scores = criteria.data_free_scores(bn_net, sites, bn_net.input_shape)
    else:
        scores = criteria.gradient_scores(bn_net, sites, tiny_data(), method, num_batches=3, batch_size=16)
    assert scores["fc2:in"].shape == (12,) and scores["conv2"].shape == (8,)
    if method != "random":
        assert scores["fc2:in"][DEAD] == scores["fc2:in"].min() < scores["fc2:in"].max()


def test_every_method_gets_identical_macs_at_a_budget():
    net = build_model("lenet5")
    links = pdl.input_links(net, net.prunable_layers, net.input_shape)
    assert pdl.format_architecture(budget_counts(net, 136_825, links)) == "5-8-45-15"
    counts = uniform_counts(net, 300_000, links)
    sizes = list(pdl.site_sizes(net).values())
    macs = set()
    for seed in range(3):
        scores = criteria.random_scores(net, net.prunable_layers, seed)
        small = pdl.trim(net, pdl.keep_indices(scores, counts, links), net.input_shape)
        macs.add(pdl.count_macs(small, net.input_shape))
    assert len(macs) == 1 and macs.pop() <= 300_000
    # the uniform fraction is the largest that fits: one more step of every layer would not
    bigger = pdl.allocation.feasible_counts({n: min(k, c + 1) for (n, c), k in zip(counts.items(), sizes)}, links)
    assert pdl.count_macs(build_model("lenet5", list(bigger.values())), net.input_shape) > 300_000
    with pytest.raises(ValueError, match="below the smallest uniform network"):
        uniform_counts(net, 100, links)


def test_compare_command_on_real_mnist(mnist_root, tmp_path, capsys):
    argv = ["compare", "--methods", "l1,random,dirichlet-mean", "--budgets", "200000", "--seeds", "0",
            "--finetune-epochs", "1", "--pretrain-epochs", "1", "--train-subset", "1000", "--test-subset", "500",
            "--run-dir", str(tmp_path / "run"), "--results", str(tmp_path / "results"), "--data-root", mnist_root,
            "--device", "cpu", "--no-progress"]
    assert main(argv) == 0
    result = json.loads((tmp_path / "results" / "lenet5_baselines.json").read_text())
    assert {r["method"] for r in result["runs"]} == {"l1", "random", "dirichlet-mean"}
    assert sorted((r["allocation"], r["method"]) for r in result["runs"]) == [
        *(("cost", m) for m in ("dirichlet-mean", "l1", "random")), ("mass", "dirichlet-mean"),
        *(("own", m) for m in ("dirichlet-mean", "l1", "random")), *(("same", m) for m in ("dirichlet-mean", "l1", "random"))]
    cost = {r["method"]: r for r in result["runs"] if r["allocation"] == "cost"}
    assert all(r["macs"] <= 200_000 for r in cost.values())
    mass = next(r for r in result["runs"] if r["allocation"] == "mass")
    assert mass["macs"] <= 200_000
    assert len({r["macs"] for r in result["runs"] if r["allocation"] == "same"}) == 1
    own = {r["method"]: r for r in result["runs"] if r["allocation"] == "own"}  # l1, random, dirichlet-mean
    assert all(r["macs"] <= 200_000 for r in own.values())
    assert len({r["architecture"] for r in own.values()}) > 1  # each method allocates the budget its own way
    for r in result["runs"]:
        assert set(r) >= {"method", "allocation", "budget_macs", "architecture", "macs", "params", "seed",
                          "error_pruned_pct", "error_finetuned_pct"}
    assert [(p["macs"], p["paper_flops"]) for p in result["paper_points"] if p["architecture"] == "5-8-45-15"] == [
        (136_825, 140_242)]
    assert (tmp_path / "results" / "lenet5_baselines.png").stat().st_size > 10_000
    assert "own allocation" in (tmp_path / "results" / "lenet5_baselines.md").read_text()
    # the fine-tuning length study reuses the comparison's record for the same length
    assert main(argv + ["--finetune-length", "1,2"]) == 0
    rows = json.loads((tmp_path / "results" / "lenet5_finetune_length.json").read_text())["rows"]
    assert [(r["method"], r["finetune_epochs"]) for r in rows] == [
        (m, n) for n in (1, 2) for m in ("l1", "random", "dirichlet-mean")]
    same = {r["method"]: r["error_finetuned_pct"] for r in result["runs"] if r["allocation"] == "same"}
    assert {r["method"]: r["errors_pct"][0] for r in rows if r["finetune_epochs"] == 1} == same
    capsys.readouterr()
    assert main(argv[:2] + ["l1,magic"]) == 2
    assert "unknown method" in capsys.readouterr().err
    assert main(argv + ["--allocations", "mine"]) == 2
    assert "choose one or more of ['same', 'own', 'mass', 'cost']" in capsys.readouterr().err


class Residual(torch.nn.Module):
    """conv1 and conv3 write the same residual stream: one channel group of two members."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(4, 5, 3, padding=1)
        self.conv3 = torch.nn.Conv2d(5, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, 2)
        self.input_shape = (3, 6, 6)

    def forward(self, x):
        h = torch.relu(self.conv1(x))
        h = torch.relu(h + self.conv3(torch.relu(self.conv2(h))))
        return self.fc(h.mean((2, 3)))


@pytest.mark.parametrize("name", list(criteria.CRITERIA))
def test_every_registered_criterion_scores_every_site(name, bn_net):
    criterion = criteria.CRITERIA[name]
    before = {k: v.clone() for k, v in bn_net.state_dict().items()}
    scores = criterion(bn_net, ["conv2", "fc1", "fc2:in"], tiny_data(), seed=0)
    assert isinstance(scores, criteria.ChannelScores) and list(scores) == ["conv2", "fc1", "fc2:in"]
    assert [s.shape for s in scores.values()] == [(8,), (12,), (12,)]
    assert all(torch.isfinite(s).all() and s.max() > s.min() for s in scores.values())
    assert scores.normalisation in pdl.allocation.NORMALISATIONS
    assert (scores.network is bn_net) == (name != "group-lasso")  # group lasso ranks its retrained copy
    assert all(torch.equal(v, bn_net.state_dict()[k]) for k, v in before.items())  # the user's network is untouched


@pytest.mark.parametrize("name", ["taylor", "fisher", "group-lasso", "dirichlet", "tp-taylor"])
def test_a_criterion_that_reads_data_asks_for_it(name, bn_net):
    with pytest.raises(ValueError, match="reads training data"):
        criteria.CRITERIA[name](bn_net, ["conv2"])


def test_the_budget_policy_normalises_each_criterion_its_own_way():
    net = build_model("lenet5").eval()
    links = pdl.input_links(net, net.prunable_layers, net.input_shape)
    taylor = criteria.CRITERIA["taylor"]
    assert (taylor.normalisation, criteria.CRITERIA["fisher"].normalisation) == ("l2", "none")
    gen = torch.Generator().manual_seed(0)
    raw = {n: torch.rand(k, generator=gen) * 10 ** i for i, (n, k) in enumerate(pdl.site_sizes(net).items())}
    scores = criteria.ChannelScores(raw, "l2", net)
    by_scores = pdl.counts_for_budget(net, scores, 300_000, net.input_shape, links=links)
    assert by_scores == pdl.counts_for_budget(net, raw, 300_000, net.input_shape, links=links, normalisation="l2")
    assert by_scores != pdl.counts_for_budget(net, raw, 300_000, net.input_shape, links=links, normalisation="none")


def test_norms_cover_every_layer_of_a_channel_group():
    torch.manual_seed(0)
    net = Residual().eval()
    scores = criteria.CRITERIA["l2"](net, ["conv1", "conv2"])
    both = torch.cat([net.conv1.weight.flatten(1), net.conv3.weight.flatten(1)], 1)
    assert torch.allclose(scores["conv1"], both.norm(dim=1))  # conv1's group: conv1 and conv3
    assert torch.allclose(scores["conv2"], net.conv2.weight.flatten(1).norm(dim=1))
    with pytest.raises(ValueError, match="residual network"):
        criteria.CRITERIA["data-free"](net, ["conv1"])


def test_the_dirichlet_criterion_is_the_fits_posterior_mean(bn_net):
    data = tiny_data()
    criterion = criteria.Dirichlet(pdl.FitConfig(epochs=1, batch_size=16))
    scores = criterion(bn_net, ["conv2", "fc1"], data, seed=3)
    switched = pdl.SwitchedNetwork(bn_net, ["conv2", "fc1"])
    guide, _ = pdl.fit_switches(switched, data, pdl.FitConfig(epochs=1, batch_size=16, seed=3), progress=False)
    for name in ("conv2", "fc1"):
        assert torch.allclose(scores[name], (guide.phi(name) / guide.phi(name).sum()).detach())
        assert scores[name].max() > scores[name].min()  # fitted: the start is exactly uniform
