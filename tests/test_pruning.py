import json

import pytest
import torch
import torch.nn as nn

from pyro_dirichlet import (
    CheckpointError,
    CoupledLayersError,
    count_macs,
    count_params,
    counts_for_budget,
    counts_for_mass,
    keep_indices,
    load_pruned,
    parse_architecture,
    save_pruned,
    trim,
)
from pyro_dirichlet.models import build_model

LENET_SIZES = {"conv1": 20, "conv2": 50, "fc1": 800, "fc2": 500}


def test_lenet5_macs_match_the_literature():
    assert count_macs(build_model("lenet5"), (1, 28, 28)) == 2_933_000
    assert count_macs(build_model("lenet5", [5, 8, 45, 15]), (1, 28, 28)) == 142_585


def test_trimmed_lenet_counts_like_the_narrow_lenet():
    net = build_model("lenet5").eval()
    scores = {n: torch.rand(k) for n, k in LENET_SIZES.items()}
    small = trim(net, keep_indices(scores, parse_architecture("5-8-45-15", LENET_SIZES)), net.input_shape)
    narrow = build_model("lenet5", [5, 8, 45, 15])
    assert count_macs(small, (1, 28, 28)) == 142_585
    assert count_params(small) == count_params(narrow)


@pytest.mark.parametrize("text, message", [
    ("5-8-45", "has 3 counts but the network has 4"),
    ("5-8-45-15-3", "has 5 counts"),
    ("0-8-45-15", "outside 1..20"),
    ("5-51-45-15", "outside 1..50"),
    ("5-x-45-15", "not a dash-separated list"),
])
def test_bad_architectures(text, message):
    with pytest.raises(ValueError, match=message):
        parse_architecture(text, LENET_SIZES)


def lenet_macs(counts):
    return count_macs(build_model("lenet5", list(counts.values())), (1, 28, 28))


def test_budget_selection_fits_and_uses_the_budget():
    net = build_model("lenet5").eval()
    gen = torch.Generator().manual_seed(0)
    scores = {n: torch.rand(k, generator=gen) for n, k in LENET_SIZES.items()}
    macs_of = lenet_macs

    for budget in (142_585, 500_000):
        counts = counts_for_budget(net, scores, budget, net.input_shape, macs_of)
        macs = macs_of(counts)
        assert macs <= budget
        assert macs > 0.97 * budget  # filled up to within a few single channels
    # the default (trim and count, for any graph) agrees with the zoo shortcut
    small = build_model("lenet5", [6, 9, 30, 20]).eval()
    small_scores = {n: torch.rand(k, generator=gen) for n, k in zip(LENET_SIZES, [6, 9, 30, 20])}
    assert counts_for_budget(small, small_scores, 100_000, small.input_shape) == counts_for_budget(
        small, small_scores, 100_000, small.input_shape, macs_of)
    with pytest.raises(ValueError, match="below the smallest possible network"):
        counts_for_budget(net, scores, 1_000, net.input_shape, macs_of)
    assert counts_for_budget(net, scores, 10**9, net.input_shape, macs_of) == LENET_SIZES


def test_budget_prefers_high_scores():
    net = build_model("lenet5").eval()
    scores = {n: torch.full((k,), 1.0 / k) for n, k in LENET_SIZES.items()}
    scores["fc1"] = torch.full((800,), 1e-6)
    scores["fc1"][:3] = 1.0  # three dominant units in fc1, the rest negligible
    counts = counts_for_budget(net, scores, 1_000_000, net.input_shape, lenet_macs)
    assert counts["fc1"] <= 50 and counts["conv1"] == 20


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


def test_coupled_layers_are_refused_and_inner_layers_trim():
    net = Residual().eval()
    with pytest.raises(CoupledLayersError, match=r"'outer' shares its output channels with \['stem'\]"):
        trim(net, {"outer": [0, 1]}, net.input_shape)
    small = trim(net, {"inner": [1, 3]}, net.input_shape)
    assert small.inner.out_channels == 2 and small.outer.in_channels == 2


def test_save_and_reload_pruned(tmp_path):
    net = build_model("lenet5", [6, 9, 30, 20]).eval()
    keep = {"conv1": [0, 2, 5], "conv2": [1, 2, 3, 8], "fc1": list(range(0, 30, 3)), "fc2": [4, 7]}
    small = trim(net, keep, net.input_shape)
    spec = {"model": "lenet5", "model_kwargs": {"widths": [6, 9, 30, 20]}, "input_shape": [1, 28, 28], "kept": keep}
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
    small = trim(net, keep_indices(scores, parse_architecture("5-8-45-15", LENET_SIZES)), net.input_shape)
    assert next(small.parameters()).is_cuda
    assert small(torch.randn(2, 1, 28, 28, device="cuda")).shape == (2, 10)
