"""One SwitchConfig: every entry point that sets up a switch takes its defaults from it."""
import importlib.util
import inspect
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from pyro import poutine

import pyro_dirichlet as pdl
from pyro_dirichlet.models import build_model
from pyro_dirichlet import criteria, switches
from pyro_dirichlet.inference import ablate, cli, compare, pipeline

DEFAULT = pdl.SwitchConfig()
ROOT = Path(__file__).resolve().parents[1]


def script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # a dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def test_the_defaults_are_the_evidence():
    """The form follows the network's kind (pyro_dirichlet/form_rule.py): `s` ranked best on LeNet-5
    (results/archive/lenet5_ablation_rks.md) and ResNet-56 (results/archive/cifar10_resnet56_ablation_cap.md), `rKs` on
    VGG-16 (results/vgg16/cifar10_vgg16_rks.md) and the ViT (results/archive/vit_cifar10_forms.md)."""
    assert (DEFAULT.alpha0, DEFAULT.form, DEFAULT.steepness, DEFAULT.temperature) == (0.5, "auto", 3.0, False)
    expected = {"lenet5": ("plain", "s"), "mlp": ("plain", "s"), "resnet56": ("residual-batchnorm", "s"),
                "wrn28_10": ("residual-batchnorm", "s"), "vgg16": ("plain-batchnorm", "rKs")}
    for model, (kind, form) in expected.items():
        net = build_model(model, widths=[4] * len(build_model(model).prunable_layers) if model != "mlp" else None)
        assert pdl.network_kind(net) == kind, model
        assert pipeline.PipelineConfig(model=model, target=None).switch_used.form == form, model
        assert pdl.SwitchedNetwork(net, net.prunable_layers[:1]).switch.form == form, model


class _Stack(torch.nn.Module):
    """conv -> norm -> ReLU -> conv -> norm (-> + the first block's output, if ``residual``) -> linear."""
    input_shape = (3, 8, 8)

    def __init__(self, norm, residual: bool):
        super().__init__()
        self.conv1, self.conv2 = torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.Conv2d(6, 6, 3, padding=1)
        self.n1, self.n2, self.residual = norm(6), norm(6), residual
        self.fc = torch.nn.Linear(6, 10)

    def forward(self, x):
        h = torch.relu(self.n1(self.conv1(x)))
        out = self.n2(self.conv2(h)) + (h if self.residual else 0)
        return self.fc(torch.relu(out).mean((2, 3)))


@pytest.mark.parametrize("norm, residual, kind, form", [
    (torch.nn.Identity, False, "plain", "s"), (torch.nn.Identity, True, "plain", "s"),
    (torch.nn.BatchNorm2d, True, "residual-batchnorm", "s"), (torch.nn.BatchNorm2d, False, "plain-batchnorm", "rKs")])
def test_the_library_picks_the_form_of_the_networks_kind(norm, residual, kind, form):
    """A user's own network: the kind is read from its modules and its traced graph, and the fit uses
    that kind's form (an explicit form is kept as given)."""
    net = _Stack(norm, residual).eval()
    assert pdl.network_kind(net) == kind
    assert pdl.SwitchedNetwork(net, ["conv1"]).switch == replace(DEFAULT, form=form)
    assert pdl.SwitchedNetwork(net, ["conv1"], pdl.SwitchConfig(form="Ks")).switch.form == "Ks"
    x = torch.randn(2, 3, 8, 8)
    switched = pdl.SwitchedNetwork(net, ["conv1"])
    uniform = {"conv1": torch.full((6,), 1 / 6)}  # the fit's start: each channel scaled by s = 1/K or r K s = r
    scaled = torch.full((6,), 1 / 6 if form == "s" else DEFAULT.share)
    hooks = [point.register_forward_hook(lambda m, i, o: o * scaled.reshape(1, -1, 1, 1))
             for point in switched.switch_points()["conv1"]]
    with torch.no_grad():
        expected = net(x)
    for hook in hooks:
        hook.remove()
    with torch.no_grad():
        assert torch.allclose(switched.forward(x, uniform), expected, atol=1e-6)


def test_a_transformer_block_gets_the_normalised_kinds_form():
    """A LayerNorm (pre-norm) MLP block: its hidden units get ``rKs`` (results/archive/vit_cifar10_forms.md)."""
    class Block(torch.nn.Module):
        input_shape = (5, 8)  # 5 tokens of 8 features

        def __init__(self):
            super().__init__()
            self.norm, self.fc1, self.fc2, self.head = (torch.nn.LayerNorm(8), torch.nn.Linear(8, 16),
                                                        torch.nn.Linear(16, 8), torch.nn.Linear(8, 3))

        def forward(self, x):
            x = x + self.fc2(torch.relu(self.fc1(self.norm(x))))
            return self.head(x.mean(1))

    net = Block().eval()
    assert pdl.network_kind(net) == "normalised"
    assert pdl.SwitchedNetwork(net, ["fc1"]).switch.form == "rKs"


def test_every_entry_point_defaults_to_switch_config(bn_net):
    assert pdl.SwitchedNetwork(bn_net, ["conv1"]).switch == pdl.resolve_switch(DEFAULT, bn_net)
    assert inspect.signature(pdl.dirichlet_switch).parameters["switch"].default == DEFAULT
    for fn in (pdl.switch_ops.switch_factor, pdl.switch_ops.scale_channels, switches.scaled_linear):
        params = inspect.signature(fn).parameters  # a factor needs a form, not "auto": the s form's
        assert (params["form"].default, params["steepness"].default) == ("s", DEFAULT.steepness)
    for model in ("lenet5", "vgg16", "resnet56", "wrn28_10"):
        assert pipeline.PipelineConfig(model=model, target=None).switch == DEFAULT
    for step in ("fit", "run"):
        args = cli.build_parser().parse_args([step])
        assert cli.config_from_args(args).switch == DEFAULT
    assert compare.CompareConfig().switch == DEFAULT
    assert criteria.CRITERIA["dirichlet"].switch == DEFAULT
    study = script("cifar10_network")
    assert study.run_config(study.parse(["--model", "resnet56"]), pdl.TrainConfig()).switch == DEFAULT
    assert script("cifar10_ablation").parse([]).alpha0 == DEFAULT.alpha0
    # the ablation's baseline row is the paper's form on purpose; all else is the default
    base = ablate.BASE
    assert (base["alpha0"], base["steepness"], base["form"]) == (DEFAULT.alpha0, DEFAULT.steepness, "Ks")


def test_dirichlet_switch_scales_as_the_switched_network_does(bn_net):
    """A user's model written with the primitive computes what SwitchedNetwork does, for each form."""
    bn_net.eval()
    x = torch.randn(4, *bn_net.input_shape)
    s = torch.distributions.Dirichlet(torch.ones(8)).sample()
    for form in pdl.switch_config.FORMS:
        switch = pdl.SwitchConfig(form=form)
        handle = bn_net.bn2.register_forward_hook(lambda m, i, o: pdl.dirichlet_switch("conv2", o, switch))
        try:
            with poutine.condition(data={"conv2": s}), torch.no_grad():
                own = bn_net(x)
        finally:
            handle.remove()
        with torch.no_grad():
            lib = pdl.SwitchedNetwork(bn_net, ["conv2"], switch).forward(x, {"conv2": s})
        assert torch.allclose(own, lib, atol=1e-6), form
        assert not torch.allclose(own, bn_net(x), atol=1e-3), form  # the switch did act


def test_bad_switch_settings_are_refused_naming_the_fix(bn_net):
    with pytest.raises(ValueError, match="switch form must be one of"):
        pdl.SwitchConfig(form="magic")
    with pytest.raises(ValueError, match="steepness > 0"):
        pdl.SwitchConfig(form="gate", steepness=0)
    for share in (0, 1.5):
        with pytest.raises(ValueError, match=r"share .* must be in \(0, 1\]"):
            pdl.SwitchConfig(form="rKs", share=share)
    with pytest.raises(TypeError, match="must be a SwitchConfig"):
        pdl.SwitchedNetwork(bn_net, ["conv1"], 0.5)
