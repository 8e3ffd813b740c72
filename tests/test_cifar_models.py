import json

import pytest
import torch

import pyro_dirichlet as pdl
from pyro_dirichlet.inference.cli import main
from pyro_dirichlet.models import build_model


def randomize_batchnorm(net):
    gen = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
    return net.eval()


TINY = {
    "vgg16": dict(widths=[4, 4, 6, 6, 8, 8, 8, 8, 8, 8, 8, 8, 8, 10, 10]),
    "resnet56": dict(widths=[4] * 9 + [6] * 9 + [8] * 9),
    "wrn28_10": dict(widen_factor=1, widths=[4] * 4 + [6] * 4 + [8] * 4),
}


@pytest.mark.parametrize("name", sorted(TINY))
def test_trimmed_equals_masked(name):
    torch.manual_seed(0)
    net = randomize_batchnorm(build_model(name, **TINY[name]))
    switched = pdl.SwitchedNetwork(net, net.prunable_layers, pdl.SwitchConfig(form="Ks"))  # masked: K s = 1 or 0
    gen = torch.Generator().manual_seed(1)
    scores = {n: torch.rand(k, generator=gen) for n, k in switched.sizes.items()}
    counts = {n: max(1, k // 2) for n, k in switched.sizes.items()}
    keep = pdl.keep_indices(scores, counts)
    masked = {}
    for n, k in switched.sizes.items():
        s = torch.zeros(k)
        s[keep[n]] = 1.0 / k
        masked[n] = s
    x = torch.randn(3, *net.input_shape)
    small = pdl.trim(net, keep, net.input_shape)
    assert all(small.get_submodule(n).weight.shape[0] == c for n, c in counts.items())
    assert pdl.count_macs(small, net.input_shape) < pdl.count_macs(net, net.input_shape)
    assert torch.allclose(small(x), switched.forward(x, masked), atol=1e-4)
    assert not torch.allclose(small(x), net(x), atol=1e-3)


@pytest.mark.parametrize("name,macs,params", [
    ("vgg16", 313_725_952, 15_249_354), ("resnet56", 125_485_696, 853_018), ("wrn28_10", 5_243_328_768, 36_479_194)])
def test_full_network_counts(name, macs, params, capsys):
    net = build_model(name)
    assert (pdl.count_macs(net, net.input_shape), pdl.count_params(net)) == (macs, params)
    assert main(["count", "--model", name, "--device", "cpu"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["macs"], printed["params"]) == (macs, params) and printed["paper_flops"] > macs


def test_residual_architecture_strings():
    net = build_model("resnet56")
    sizes = {n: net.get_submodule(n).weight.shape[0] for n in net.prunable_layers}
    per_stage = pdl.parse_architecture("6-11-16", sizes, net.layer_groups)
    assert list(per_stage.values()) == [6] * 9 + [11] * 9 + [16] * 9
    text = pdl.format_architecture(per_stage)
    assert pdl.parse_architecture(text, sizes, net.layer_groups) == per_stage  # 27 numbers round-trip
    with pytest.raises(ValueError, match="one per group"):
        pdl.parse_architecture("6-11", sizes, net.layer_groups)
    wrn = build_model("wrn28_10")
    wrn_sizes = {n: wrn.get_submodule(n).weight.shape[0] for n in wrn.prunable_layers}
    assert len(pdl.parse_architecture("80-160-320", wrn_sizes, wrn.layer_groups)) == 12


def test_zero_padded_shortcut_channels_are_prunable():
    """ResNet-56's option-A shortcut (a ChannelScatter) keeps its channel map through pruning:
    the residual streams of 16, 32 and 64 channels are three groups, pruned like any other."""
    net = randomize_batchnorm(build_model("resnet56", **TINY["resnet56"]))
    groups = {g.name: g for g in pdl.channel_groups(net, torch.zeros(1, *net.input_shape))}
    assert (groups["conv"].size, groups["stage2.0.conv2"].size, groups["stage3.0.conv2"].size) == (16, 32, 64)
    assert all(g.problem is None for g in groups.values())
    small = pdl.trim(net, {"conv": [0, 3, 5], "stage2.0.conv2": [c for c in range(32) if c != 11]}, net.input_shape)
    shortcut = small.stage2[0].shortcut  # stage 1's channels 0, 3, 5 sat at 8, 11, 13 of stage 2's 32
    assert (shortcut.in_channels, shortcut.out_channels) == (3, 31)
    assert shortcut.in_index.tolist() == [0, 2] and shortcut.out_index.tolist() == [8, 12]  # 3 -> 11 was removed
    x = torch.randn(2, *net.input_shape)
    assert small(x).shape == (2, 10) and pdl.count_params(small) < pdl.count_params(net)


class PaddedShortcutNet(torch.nn.Module):
    """A user's option-A shortcut written with F.pad: Torch-Pruning ties 4 and 8 channels."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Conv2d(4, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, 2)
        self.input_shape = (3, 8, 8)

    def forward(self, x):
        h = torch.relu(self.conv1(x))
        h = torch.relu(self.conv2(h) + torch.nn.functional.pad(h, (0, 0, 0, 0, 2, 2)))
        return self.fc(h.mean((2, 3)))


def test_a_shortcut_that_pads_with_f_pad_is_refused_with_the_fix():
    net = PaddedShortcutNet()
    with pytest.raises(pdl.CoupledLayersError, match="'conv1' cannot be pruned"):
        pdl.trim(net, {"conv1": [0, 1]}, net.input_shape)
    with pytest.raises(ValueError, match="cannot be pruned: its layers .* different widths"):
        pdl.SwitchedNetwork(net, ["conv2"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", sorted(TINY))
def test_trim_on_cuda(name):
    net = randomize_batchnorm(build_model(name, **TINY[name])).cuda()
    keep = {n: [0] for n in net.prunable_layers}
    small = pdl.trim(net, keep, net.input_shape)
    x = torch.randn(2, *net.input_shape, device="cuda")
    assert small(x).shape == (2, 10) and next(small.parameters()).is_cuda


def test_cifar10_jpeg_copy_loads_in_label_order(cifar_root, tmp_path, monkeypatch):
    monkeypatch.setenv(pdl.cifar10.CACHE_ENV, str(tmp_path / "cache"))
    test = pdl.load_cifar10(cifar_root, train=False)
    assert test.images.shape == (10_000, 3, 32, 32) and test.images.dtype == torch.uint8
    assert test.labels.bincount().tolist() == [1000] * 10
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1  # decoded once, then cached
    again = pdl.load_cifar10(cifar_root, train=False)
    assert torch.equal(again.images, test.images)
    x, y, _ = next(test.batches(2000, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert abs(x.mean().item()) < 0.2 and 0.8 < x.std().item() < 1.2  # standard CIFAR-10 normalisation


def test_real_cifar10_images_through_the_pipeline(cifar_root, tmp_path, capsys):
    argv = ["run", "--model", "resnet56", "--arch", "4-8-12", "--run-dir", str(tmp_path / "run"),
            "--data-root", cifar_root, "--train-subset", "200", "--test-subset", "100", "--pretrain-epochs", "1",
            "--fit-epochs", "1", "--finetune-epochs", "1", "--device", "cpu", "--no-progress"]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    result = printed["run"]
    assert result["architecture"] == "-".join(["4"] * 9 + ["8"] * 9 + ["12"] * 9)
    assert result["macs"] < 125_485_696 / 3 and 0 <= result["error_pct"] <= 100
    assert "/fit-mean-layerwise-" in printed["folder"] and "/prune-arch-4-8-12/finetuned-" in printed["folder"]
    small, spec = pdl.load_pruned(printed["folder"])
    assert small.get_submodule("stage3.8.conv1").weight.shape[0] == 12 and spec["architecture"] == result["architecture"]
