import json

import pytest
import torch
import torch.nn as nn

import pyro_dirichlet as pdl
from pyro_dirichlet.sites import InputSelect
from pyro_dirichlet import (
    CheckpointError,
    SwitchedNetwork,
    count_macs,
    count_ops,
    count_params,
    counts_for_budget,
    counts_for_mass,
    input_links,
    keep_indices,
    load_pruned,
    parse_architecture,
    save_pruned,
    trim,
)
from pyro_dirichlet.models import build_model

LENET_SIZES = {"conv1": 20, "conv2": 50, "fc1:in": 800, "fc1": 500}
LINKS = {"fc1:in": ("conv2", 16)}

# Supplement Table 1 rows with stated FLOPs (LeNet-5-Caffe): architecture, stated FLOPs.
TABLE1 = {"Dirichlet": ("5-8-45-15", 140_000), "GD": ("7-13-208-16", 254_000), "SBP": ("3-18-284-283", 217_000),
          "BC-GNJ": ("8-13-88-13", 290_000), "BC-GHS": ("5-10-76-16", 158_000)}


def test_lenet5_is_lenet5_caffe():
    net = build_model("lenet5")
    assert count_ops(net, net.input_shape) == {"macs": 2_293_000, "paper_flops": 2_308_230}
    assert count_params(net) == 431_080
    assert input_links(net, net.prunable_layers, net.input_shape) == LINKS
    small = build_model("lenet5", [5, 8, 45, 15])
    assert count_ops(small, small.input_shape) == {"macs": 136_825, "paper_flops": 140_242}
    assert count_params(small) == 1_988
    authors = build_model("lenet5_3fc")  # the authors' script variant, one more fully connected layer
    assert (count_macs(authors, authors.input_shape), count_params(authors)) == (2_933_000, 1_071_880)
    assert count_macs(build_model("lenet5_3fc", [5, 8, 45, 15]), authors.input_shape) == 142_585


@pytest.mark.parametrize("row", sorted(TABLE1))
def test_table1_rows_recount_within_1_5_percent(row):
    arch, stated = TABLE1[row]
    net = build_model("lenet5", [int(w) for w in arch.split("-")])
    flops = count_ops(net, net.input_shape)["paper_flops"]
    assert abs(flops - stated) <= 0.015 * stated, (row, flops, stated)


def test_trimmed_lenet_counts_like_the_narrow_lenet():
    net = build_model("lenet5").eval()
    gen = torch.Generator().manual_seed(0)
    scores = {n: torch.rand(k, generator=gen) for n, k in LENET_SIZES.items()}
    keep = keep_indices(scores, parse_architecture("5-8-45-15", LENET_SIZES, links=LINKS), LINKS)
    assert {f // 16 for f in keep["fc1:in"]} == set(keep["conv2"])  # every kept filter keeps a feature
    small = trim(net, keep, net.input_shape)
    assert isinstance(small.fc1, InputSelect) and small.fc1.layer.weight.shape == (15, 45)
    assert small.conv2.out_channels == 8
    assert count_ops(small, (1, 28, 28)) == {"macs": 136_825, "paper_flops": 140_242}
    assert count_params(small) == count_params(build_model("lenet5", [5, 8, 45, 15])) == 1_988


def test_trimmed_lenet_equals_masked_and_drops_unread_filters():
    torch.manual_seed(0)
    net = build_model("lenet5").eval()
    gen = torch.Generator().manual_seed(1)
    scores = {n: torch.rand(k, generator=gen) for n, k in LENET_SIZES.items()}
    keep = keep_indices(scores, parse_architecture("6-12-100-40", LENET_SIZES, links=LINKS), LINKS)
    unread = keep["conv2"][0]  # no feature of this kept filter is read any more: it must leave conv2 too
    keep["fc1:in"] = [f for f in keep["fc1:in"] if f // 16 != unread]
    switched = SwitchedNetwork(net, net.prunable_layers, pdl.SwitchConfig(form="Ks"))  # masked: K s = 1 or 0
    masked = {name: torch.zeros(k).index_fill_(0, torch.tensor(keep[name]), 1.0 / k) for name, k in LENET_SIZES.items()}
    small = trim(net, keep, net.input_shape)
    assert small.conv2.out_channels == 11 and small.fc1.layer.in_features == len(keep["fc1:in"])
    x = torch.randn(5, 1, 28, 28)
    assert torch.allclose(small(x), switched.forward(x, masked), atol=1e-5)
    assert not torch.allclose(small(x), net(x), atol=1e-3)


@pytest.mark.parametrize("text, message", [
    ("5-8-45", "has 3 counts but the network has 4"),
    ("5-8-45-15-3", "has 5 counts"),
    ("0-8-45-15", "outside 1..20"),
    ("5-51-45-15", "outside 1..50"),
    ("5-x-45-15", "not a dash-separated list"),
    ("5-8-200-15", "give at most 128"),
    ("5-8-7-15", "need at least 8"),
])
def test_bad_architectures(text, message):
    with pytest.raises(ValueError, match=message):
        parse_architecture(text, LENET_SIZES, links=LINKS)


def lenet_macs(counts):
    return count_macs(build_model("lenet5", list(counts.values())), (1, 28, 28))


def test_budget_selection_fits_and_uses_the_budget():
    net = build_model("lenet5").eval()
    gen = torch.Generator().manual_seed(0)
    scores = {n: torch.rand(k, generator=gen) for n, k in LENET_SIZES.items()}
    for budget in (136_825, 500_000):
        counts = counts_for_budget(net, scores, budget, net.input_shape, lenet_macs, LINKS, per_mac=False)
        assert counts["conv2"] <= counts["fc1:in"] <= 16 * counts["conv2"]
        macs = lenet_macs(counts)
        assert macs <= budget
        assert macs > 0.97 * budget  # filled up to within a few single channels
    # the default (trim and count, for any graph) agrees with the zoo shortcut
    authors = build_model("lenet5_3fc", [6, 9, 30, 20]).eval()
    sizes = dict(zip(authors.prunable_layers, [6, 9, 30, 20]))
    small_scores = {n: torch.rand(k, generator=gen) for n, k in sizes.items()}

    def authors_macs(counts):
        return count_macs(build_model("lenet5_3fc", list(counts.values())), (1, 28, 28))

    assert counts_for_budget(authors, small_scores, 100_000, authors.input_shape) == counts_for_budget(
        authors, small_scores, 100_000, authors.input_shape, authors_macs)
    with pytest.raises(ValueError, match="below the smallest possible network"):
        counts_for_budget(net, scores, 1_000, net.input_shape, lenet_macs, LINKS)
    assert counts_for_budget(net, scores, 10**9, net.input_shape, lenet_macs, LINKS) == LENET_SIZES


def test_budget_prefers_high_scores():
    net = build_model("lenet5").eval()
    scores = {n: torch.full((k,), 1.0 / k) for n, k in LENET_SIZES.items()}
    scores["fc1"] = torch.full((500,), 1e-6)
    scores["fc1"][:3] = 1.0  # three dominant units in fc1, the rest negligible
    counts = counts_for_budget(net, scores, 2_000_000, net.input_shape, lenet_macs, LINKS, per_mac=False)
    assert counts["fc1"] <= 200  # 293,000 MACs to remove, 810 per fc1 unit: fc1's negligible units go first
    assert (counts["conv1"], counts["conv2"], counts["fc1:in"]) == (20, 50, 800)


def test_normalisation_decides_which_layer_gives_way():
    """Raw scores ten times larger in conv2: unnormalised, conv2 keeps all; per-layer mean or L2
    normalisation make the layers comparable, and a posterior mean's ``mean`` is K_l E[s]."""
    gen = torch.Generator().manual_seed(1)
    scores = {n: torch.rand(k, generator=gen) for n, k in LENET_SIZES.items()}
    scores["conv2"] = 10 + scores["conv2"]
    posterior = {n: s / s.sum() for n, s in scores.items()}
    normalised = pdl.allocation.normalise_scores(posterior, "mean")
    assert all(torch.allclose(normalised[n], len(s) * s) for n, s in posterior.items())
    assert torch.allclose(pdl.allocation.normalise_scores(scores, "l2")["conv2"].norm(), torch.tensor(1.0))
    assert pdl.allocation.normalise_scores(scores, "none") == scores
    raw = counts_for_budget(net := build_model("lenet5").eval(), scores, 500_000, net.input_shape, lenet_macs, LINKS,
                            normalisation="none", per_mac=False)
    by_mean = counts_for_budget(net, scores, 500_000, net.input_shape, lenet_macs, LINKS, normalisation="mean",
                                per_mac=False)
    assert raw["conv2"] == 50 and by_mean["conv2"] < 50
    with pytest.raises(ValueError, match="unknown score normalisation 'max'"):
        pdl.allocation.normalise_scores(scores, "max")


def test_mass_threshold():
    scores = {"a": torch.tensor([0.5, 0.3, 0.15, 0.05]), "b": torch.ones(10)}
    assert counts_for_mass(scores, 0.8) == {"a": 2, "b": 8}
    assert counts_for_mass(scores, 1.0) == {"a": 4, "b": 10}
    with pytest.raises(ValueError, match=r"in \(0, 1\]"):
        counts_for_mass(scores, 0.0)


class Residual(nn.Module):
    input_shape = (3, 8, 8)

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.inner = nn.Conv2d(4, 4, 3, padding=1)
        self.outer = nn.Conv2d(4, 4, 3, padding=1)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        h = torch.relu(self.stem(x))
        h = h + self.outer(torch.relu(self.inner(h)))
        return self.head(h.mean((2, 3)))


def test_coupled_layers_trim_as_one_group_and_inner_layers_alone():
    net = Residual().eval()
    small = trim(net, {"outer": [0, 1]}, net.input_shape)
    assert (small.stem.out_channels, small.outer.out_channels, small.inner.in_channels) == (2, 2, 2)
    with pytest.raises(ValueError, match="'stem' and 'outer' are one channel group"):
        trim(net, {"stem": [0], "outer": [1]}, net.input_shape)
    small = trim(net, {"inner": [1, 3]}, net.input_shape)
    assert small.inner.out_channels == 2 and small.outer.in_channels == 2


def test_save_and_reload_pruned(tmp_path):
    net = build_model("lenet5").eval()
    keep = {"conv1": [0, 2, 5], "conv2": [1, 2, 3, 8], "fc1:in": [16, 17, 40, 50, 130], "fc1": [4, 7, 300]}
    small = trim(net, keep, net.input_shape)
    spec = {"model": "lenet5", "model_kwargs": {}, "input_shape": [1, 28, 28], "kept": keep}
    save_pruned(small, spec, tmp_path)
    reloaded, spec2 = load_pruned(tmp_path)
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(reloaded(x), small(x))
    assert spec2["kept"] == keep
    assert json.loads((tmp_path / "spec.json").read_text())["kept"]["conv1"] == [0, 2, 5]
    (tmp_path / "model.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_pruned(tmp_path)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_trim_on_cuda():
    net = build_model("lenet5").cuda().eval()
    scores = {n: torch.rand(k) for n, k in LENET_SIZES.items()}
    keep = keep_indices(scores, parse_architecture("5-8-45-15", LENET_SIZES, links=LINKS), LINKS)
    small = trim(net, keep, net.input_shape)
    assert next(small.parameters()).is_cuda and small.fc1.index.is_cuda
    assert small(torch.randn(2, 1, 28, 28, device="cuda")).shape == (2, 10)


def test_mass_budget_keeps_the_same_share_of_every_layer():
    scores = {"a": torch.tensor([0.7, 0.2, 0.05, 0.05]), "b": torch.full((10,), 0.1)}

    def macs(counts):  # a toy cost: 10 per channel of a, 1 per channel of b
        return 10 * counts["a"] + counts["b"]

    counts = pdl.allocation.counts_for_mass_budget(scores, 28, macs)
    assert counts == {"a": 2, "b": 8}  # share 0.8 (0.9 would need a: 3, b: 9 = 39)
    assert pdl.allocation.counts_for_mass_budget(scores, 100, macs) == {"a": 4, "b": 10}
    with pytest.raises(ValueError, match="below the smallest possible network"):
        pdl.allocation.counts_for_mass_budget(scores, 5, macs)


def test_a_budget_of_macs_and_parameters_is_met_on_vgg16():
    """Supplement Table 2's budget: at most 38M MACs and 0.84M parameters."""
    net = build_model("vgg16").eval()
    gen = torch.Generator().manual_seed(0)
    scores = {name: torch.rand(k, generator=gen) for name, k in pdl.site_sizes(net).items()}
    by_macs = counts_for_budget(net, scores, 38_000_000, net.input_shape)
    both = counts_for_budget(net, scores, 38_000_000, net.input_shape, budget_params=840_000)
    small = pdl.trim(net, pdl.keep_indices(scores, both), net.input_shape)
    assert pdl.count_macs(small, net.input_shape) <= 38_000_000 and 800_000 < pdl.count_params(small) <= 840_000
    assert pdl.param_model(net, list(scores))(by_macs) > 840_000  # the MAC budget alone keeps too many parameters
    with pytest.raises(ValueError, match="100 parameters"):
        counts_for_budget(net, scores, 38_000_000, net.input_shape, budget_params=100)


def test_two_budgets_weigh_parameters_where_they_bind(monkeypatch):
    """VGG-16 (an eighth of its widths) with equal scores, at Table 2's shares of MACs (38/314) and
    parameters (0.84/15.25): ordered by MACs alone, the parameter budget binds first, so the layers
    cheap in MACs and dear in parameters (fc1, fc2, conv13) stay while the first convs fall to their
    floors and most of the MAC budget goes unused; the weighted order keeps more channels within
    both budgets."""
    from pyro_dirichlet.models.vgg import FULL_WIDTHS
    net = build_model("vgg16", widths=[w // 8 for w in FULL_WIDTHS]).eval()
    scores = {name: torch.ones(k) for name, k in pdl.site_sizes(net).items()}
    macs, params = pdl.mac_model(net, list(scores)), pdl.param_model(net, list(scores))
    budget = dict(budget_macs=macs(pdl.site_sizes(net)) * 38 // 314, budget_params=params(pdl.site_sizes(net)) * 84 // 1525)
    both = counts_for_budget(net, scores, example_inputs=net.input_shape, **budget)
    monkeypatch.setattr(pdl.allocation, "MAC_SHARES", (1.0,))  # the MAC cost alone
    by_mac_cost = counts_for_budget(net, scores, example_inputs=net.input_shape, **budget)
    floor = pdl.allocation.floor_counts(pdl.site_sizes(net))
    for counts in (both, by_mac_cost):
        assert macs(counts) <= budget["budget_macs"] and params(counts) <= budget["budget_params"]
        assert all(counts[n] >= floor[n] for n in counts)
    assert by_mac_cost["conv1"] == floor["conv1"] and macs(by_mac_cost) < 0.25 * budget["budget_macs"]
    assert sum(both.values()) > 1.1 * sum(by_mac_cost.values()) and macs(both) > 0.8 * budget["budget_macs"]


def test_per_mac_order_removes_the_channels_that_cost_most_per_unit_of_score():
    """fc1's input features score lower than conv1's channels, but cost 500 MACs each against
    94,400: the plain order removes features first, the per-MAC order conv1's channels."""
    net = build_model("lenet5").eval()
    scores = {name: torch.full((k,), 0.9 if name == "fc1:in" else 1.0) for name, k in pdl.site_sizes(net).items()}
    kwargs = dict(links=LINKS, normalisation="none")
    per_mac = counts_for_budget(net, scores, 1_500_000, net.input_shape, per_mac=True, **kwargs)
    plain = counts_for_budget(net, scores, 1_500_000, net.input_shape, per_mac=False, **kwargs)
    assert lenet_macs(per_mac) <= 1_500_000 and lenet_macs(plain) <= 1_500_000
    assert per_mac["conv1"] < plain["conv1"] and per_mac["fc1:in"] == 800 > plain["fc1:in"]


def test_trim_works_under_no_grad():
    """Torch-Pruning traces through autograd; trim turns it on for its trace and returns a
    trainable network, whatever the caller's grad mode."""
    net = build_model("lenet5").eval()
    keep = {"conv1": [0, 3], "fc1:in": list(range(0, 800, 2))}
    with torch.no_grad():
        small = trim(net, keep, net.input_shape)
    assert small.conv1.out_channels == 2 and all(p.requires_grad for p in small.parameters())


def test_no_budget_allocation_cuts_a_layer_below_its_floor():
    """ResNet-56 at 2.5x fewer MACs: scores that make one layer worthless (the per-MAC order would
    empty it) still leave it ceil(min_keep * K) channels; min_keep=0 lets it go to one."""
    net = build_model("resnet56").eval()
    gen = torch.Generator().manual_seed(0)
    scores = {name: torch.rand(k, generator=gen) + 1 for name, k in pdl.site_sizes(net).items()}
    scores["stage1.3.conv1"] = torch.full((16,), 1e-6)
    floor = pdl.allocation.floor_counts(pdl.site_sizes(net))
    assert pdl.allocation.MIN_KEEP == 0.1 and floor["stage1.3.conv1"] == 2 and floor["stage3.0.conv1"] == 7
    for per_mac in (False, True):
        counts = counts_for_budget(net, scores, 50_000_000, net.input_shape, per_mac=per_mac)
        assert all(counts[name] >= floor[name] for name in counts) and counts["stage1.3.conv1"] == 2
        assert pdl.mac_model(net, list(scores))(counts) <= 50_000_000
    bare = counts_for_budget(net, scores, 50_000_000, net.input_shape, min_keep=0.0)
    assert bare["stage1.3.conv1"] == 1
    strict = counts_for_budget(net, scores, 50_000_000, net.input_shape, min_keep=0.3)
    assert min(strict[n] / k for n, k in pdl.site_sizes(net).items()) >= 0.3
    mass = pdl.allocation.counts_for_mass_budget(scores, 50_000_000, pdl.mac_model(net, list(scores)))
    assert all(mass[name] >= floor[name] for name in mass)
    with pytest.raises(ValueError, match="every switched layer at its floor, min_keep=0.5"):
        counts_for_budget(net, scores, 50_000_000, net.input_shape, min_keep=0.5)


class TimeMajor(nn.Module):
    """conv -> (B, C, 1, T) features read time-major by a Linear: permute + reshape, not channel-major."""

    input_shape = (1, 1, 8)

    def __init__(self):
        super().__init__()
        self.conv, self.fc, self.out = nn.Conv2d(1, 4, (1, 3), padding=(0, 1)), nn.Linear(32, 6), nn.Linear(6, 2)

    def forward(self, x):
        h = torch.relu(self.conv(x)).squeeze(2)  # (B, 4, 8)
        return self.out(torch.relu(self.fc(h.permute(0, 2, 1).reshape(len(x), -1))))


def test_trim_refuses_what_it_cannot_remove_exactly_and_names_the_site():
    """A flatten that is not channel-major: Torch-Pruning would cut fc's columns as if it were;
    trim compares with the masked network and refuses, naming the site. An exact trim passes."""
    torch.manual_seed(0)
    net = TimeMajor().eval()
    with pytest.raises(pdl.pruning.TrimMismatchError, match=r"trimming \['conv'\] does not compute .* differ by"):
        trim(net, {"conv": [0, 2], "fc": [0, 1, 2]}, net.input_shape)
    groups = {g.name: g for g in pdl.channel_groups(net, torch.zeros(1, *net.input_shape))}
    assert "'fc' reads its channels in another order than channel-major" in groups["conv"].problem
    assert groups["fc"].problem is None  # flagged when the switches are built, not after a fit:
    with pytest.raises(ValueError, match="'conv' cannot be pruned: 'fc' reads its channels in another order"):
        pdl.SwitchedNetwork(net, ["conv"])
    small = trim(net, {"fc": [0, 1, 2]}, net.input_shape)  # fc's own units are exact
    assert small.fc.out_features == 3
    unchecked = trim(net, {"conv": [0, 2]}, net.input_shape, verify=False)  # what the check catches
    assert unchecked.fc.in_features == 16


@pytest.mark.parametrize("keep, message", [
    ({"conv1": [0, 1, 1]}, "without repeats, got 3 indices \\(2 distinct\\)"),
    ({"conv1": [0.0, 1.5]}, "must be integer indices"),
    ({"fc2": [0, 1]}, "'fc2' is the network's output layer: trimming it drops 8 of its 10 outputs"),
    ({"conv9": [0]}, "the network has no layer 'conv9'; its conv/linear layers: \\['conv1', 'conv2', 'fc1', 'fc2'\\]"),
])
def test_trim_refuses_bad_keep_indices_and_the_output_layer(keep, message):
    net = build_model("lenet5").eval()
    with pytest.raises(ValueError, match=message):
        trim(net, keep, net.input_shape)


def test_trim_drops_classes_only_when_asked():
    net = build_model("lenet5").eval()
    small = trim(net, {"fc2": [0, 3]}, net.input_shape, allow_output=True)
    assert small.fc2.out_features == 2
    assert trim(net, {"conv1": torch.tensor([0, 2])}, net.input_shape).conv1.out_channels == 2  # a tensor of indices


def test_macs_count_conv1d_and_transposed_convs_and_refuse_what_they_cannot_see():
    """As torch.utils.flop_counter counts them (2 FLOPs per MAC); a GRU is refused, not skipped."""
    from torch.utils.flop_counter import FlopCounterMode

    net = nn.Sequential(nn.Conv1d(3, 8, 5), nn.ReLU(), nn.Conv1d(8, 4, 3, groups=2),
                        nn.Unflatten(1, (4, 1)), nn.ConvTranspose2d(4, 6, 3, stride=2), nn.Flatten(), nn.LazyLinear(5))
    x = torch.randn(1, 3, 32)
    net(x)
    with FlopCounterMode(display=False) as counter:
        net(x)
    assert pdl.count_macs(net, (3, 32)) == counter.get_total_flops() // 2
    with pytest.raises(ValueError, match=r"\['rnn'\] compute matrix products it cannot see"):
        pdl.count_macs(nn.ModuleDict({"rnn": nn.GRU(4, 4)}), (2, 4))


class HeadsBlock(nn.Module):
    """Self-attention with separate q, k, v (4 heads of 4), as BERT writes it: a reshape into heads."""

    input_shape = (5, 16)

    def __init__(self):
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(16, 16) for _ in range(4))
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        B, N, _ = x.shape
        q, k, v = (f(x).view(B, N, 4, 4).transpose(1, 2) for f in (self.q, self.k, self.v))
        att = torch.softmax(q @ k.transpose(-1, -2) / 2.0, -1)
        return self.head(self.o((att @ v).transpose(1, 2).reshape(B, N, 16)).mean(1))


@pytest.mark.parametrize("kept", [list(range(8)), list(range(14))])
def test_trim_refuses_dimensions_across_heads(kept):
    """Keeping 8 of 16 q/k/v dimensions (whole heads 0 and 1) regroups them into 4 heads of 2, another
    function; 14 do not fill 4 heads at all. Both are refused, not returned."""
    torch.manual_seed(0)
    net = HeadsBlock().eval()
    with pytest.raises(pdl.pruning.TrimMismatchError):
        trim(net, {"v": kept}, net.input_shape)
