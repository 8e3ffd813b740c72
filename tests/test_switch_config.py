"""One SwitchConfig: every entry point that sets up a switch takes its defaults from it."""
import importlib.util
import inspect
import sys
from pathlib import Path

import pytest
import torch
from pyro import poutine

import pyro_dirichlet as pdl
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
    """results/lenet5_ablation.md and results/cifar10_resnet56_ablation.md: `s` ranks best."""
    assert (DEFAULT.alpha0, DEFAULT.form, DEFAULT.steepness, DEFAULT.temperature) == (0.5, "s", 3.0, False)


def test_every_entry_point_defaults_to_switch_config(bn_net):
    assert pdl.SwitchedNetwork(bn_net, ["conv1"]).switch == DEFAULT
    assert inspect.signature(pdl.dirichlet_switch).parameters["switch"].default == DEFAULT
    for fn in (pdl.switch_factor, pdl.scale_channels, switches.scaled_linear):
        params = inspect.signature(fn).parameters
        assert (params["form"].default, params["steepness"].default) == (DEFAULT.form, DEFAULT.steepness)
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
