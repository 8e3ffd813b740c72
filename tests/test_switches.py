import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

from pyro_dirichlet import SwitchConfig, SwitchedNetwork, dirichlet_switch, keep_indices, trim
from pyro_dirichlet.switch_ops import scale_channels, switch_factor
from pyro_dirichlet.models import build_model

KS = SwitchConfig(form="Ks")  # the paper's form: the uniform switch 1/K keeps the trained function


def uniform(sizes, shape=()):
    return {name: torch.full((*shape, k), 1.0 / k) for name, k in sizes.items()}


@pytest.mark.parametrize("make", ["bn", "lenet5"])
def test_uniform_switch_leaves_logits_unchanged(make, bn_net):
    net = bn_net if make == "bn" else build_model("lenet5").eval()
    x = torch.randn(5, *net.input_shape)
    expected = net(x)
    switched = SwitchedNetwork(net, net.prunable_layers, KS)
    assert torch.allclose(switched.forward(x, uniform(switched.sizes)), expected, atol=1e-5)
    # and the module is left without hooks
    assert all(not m._forward_hooks for m in net.modules())


@pytest.mark.parametrize("make", ["bn", "lenet5_3fc"])
def test_trimmed_equals_masked(make, bn_net):
    net = bn_net if make == "bn" else build_model("lenet5_3fc", [6, 9, 30, 20]).eval()
    switched = SwitchedNetwork(net, net.prunable_layers, KS)
    gen = torch.Generator().manual_seed(1)
    scores = {name: torch.rand(k, generator=gen) for name, k in switched.sizes.items()}
    counts = {name: max(1, k // 3) for name, k in switched.sizes.items()}
    keep = keep_indices(scores, counts)
    masked = {}
    for name, k in switched.sizes.items():
        s = torch.zeros(k)
        s[keep[name]] = 1.0 / k  # kept channels scaled by K * s = 1, removed ones by 0
        masked[name] = s
    x = torch.randn(4, *net.input_shape)
    small = trim(net, keep, net.input_shape)
    for name, count in counts.items():
        w = small.get_submodule(name).weight
        assert w.shape[0] == count
    assert torch.allclose(small(x), switched.forward(x, masked), atol=1e-5)
    assert not torch.allclose(small(x), net(x), atol=1e-3)  # removing channels did change the function


def test_switch_sits_after_batchnorm(bn_net):
    switched = SwitchedNetwork(bn_net, ["conv1", "fc1"])
    switched.forward(torch.randn(2, *bn_net.input_shape), uniform(switched.sizes))
    assert switched.switch_points()["conv1"] == [bn_net.bn1]
    assert switched.switch_points()["fc1"] == [bn_net.fc1]


def test_scale_channels_rejects_wrong_width():
    with pytest.raises(ValueError, match="does not match channel dimension"):
        scale_channels(torch.ones(2, 3), torch.ones(4) / 4)


def test_primitive_in_a_user_model():
    def model(h):
        return dirichlet_switch("units", h, SwitchConfig(alpha0=0.3, form="Ks"))

    h = torch.randn(6, 5)
    trace = poutine.trace(model).get_trace(h)
    site = trace.nodes["units"]
    assert isinstance(site["fn"], dist.Dirichlet)
    assert torch.allclose(site["fn"].concentration, torch.full((5,), 0.3))
    assert torch.allclose(trace.nodes["_RETURN"]["value"], h * 5 * site["value"], atol=1e-6)
    with pytest.raises(ValueError, match="alpha0 must be a positive number"):
        dirichlet_switch("bad", h, SwitchConfig(alpha0=0.0))
    with pytest.raises(TypeError, match="takes a SwitchConfig"):
        dirichlet_switch("bad", h, 0.5)


def test_model_has_one_site_per_layer_and_scaled_plate(bn_net):
    switched = SwitchedNetwork(bn_net, ["conv2", "fc2"], SwitchConfig(alpha0=0.7))
    x, y = torch.randn(5, *bn_net.input_shape), torch.randint(0, 3, (5,))
    trace = poutine.trace(switched.model).get_trace(x, y, num_data=50)
    samples = [n for n, s in trace.nodes.items() if s["type"] == "sample" and isinstance(s["fn"], dist.Dirichlet)]
    assert samples == ["conv2", "fc2"]
    assert torch.allclose(trace.nodes["conv2"]["fn"].concentration, torch.full((8,), 0.7))
    assert trace.nodes["y"]["scale"] == pytest.approx(10.0)  # N / B


def test_bad_layer_and_alpha0(bn_net):
    with pytest.raises(ValueError, match=r"unknown layer name\(s\) \['conv9'\]"):
        SwitchedNetwork(bn_net, ["conv1", "conv9"])
    with pytest.raises(ValueError, match="alpha0 must be a positive number"):
        SwitchedNetwork(bn_net, ["conv1"], SwitchConfig(alpha0=-1.0))
    with pytest.raises(ValueError, match="conv layers .* or nn.Linear"):
        SwitchedNetwork(bn_net, ["bn1"])
    with pytest.raises(ValueError, match="input switches .* attach to nn.Linear"):
        SwitchedNetwork(bn_net, ["conv2:in"])


def test_input_switch_scales_the_layers_input(bn_net):
    switched = SwitchedNetwork(bn_net, ["fc2:in", "fc2"], KS)
    assert switched.sizes == {"fc2:in": 12, "fc2": 7}
    x = torch.randn(3, *bn_net.input_shape)
    seen = {}
    handle = bn_net.fc2.register_forward_hook(lambda m, i, o: seen.__setitem__("u", i[0]))  # input as fc2 reads it
    plain = bn_net(x)
    u = seen["u"]
    s = {"fc2:in": torch.linspace(0.5, 1.5, 12) / torch.linspace(0.5, 1.5, 12).sum(), "fc2": torch.full((7,), 1 / 7)}
    switched.forward(x, s)
    handle.remove()
    assert torch.allclose(seen["u"], u * 12 * s["fc2:in"], atol=1e-6) and not torch.allclose(seen["u"], u)
    assert torch.allclose(switched.forward(x, uniform(switched.sizes)), plain, atol=1e-5)


@pytest.mark.parametrize("form", ["Ks", "s", "rKs", "cap", "gate", "norm", "bn"])
def test_switch_forms_fold_particles_like_single_passes(form, bn_net):
    switched = SwitchedNetwork(bn_net, bn_net.prunable_layers, SwitchConfig(form=form))
    S, B = 3, 6
    x = torch.randn(B, *bn_net.input_shape)
    s = {name: dist.Dirichlet(torch.ones(k)).sample((S, 1)) for name, k in switched.sizes.items()}
    folded = switched.forward(x, s).reshape(S, B, -1)
    for p in range(S):
        single = switched.forward(x, {name: v[p, 0] for name, v in s.items()})
        assert torch.allclose(folded[p], single, atol=1e-5)
    if form in ("Ks", "gate", "norm"):  # the uniform switch keeps the trained function ("bn": up to BatchNorm's eps)
        assert torch.allclose(switched.forward(x, uniform(switched.sizes)), bn_net(x), atol=1e-5)


def test_switch_factors():
    s = torch.tensor([0.0, 0.25, 0.75])
    assert torch.allclose(switch_factor(s, "Ks"), 3 * s) and torch.equal(switch_factor(s, "s"), s)
    kept = switch_factor(torch.full((8,), 1 / 8), "rKs", share=0.25)  # the uniform switch: r per channel, rK in all
    assert torch.allclose(kept, torch.full((8,), 0.25)) and torch.allclose(switch_factor(s, "rKs", share=0.5), 1.5 * s)
    pruned = switch_factor(torch.tensor([0.5, 0.5, 0.0, 0.0]), "cap", share=0.5)  # uniform over rK = 2 channels
    assert torch.equal(pruned, torch.tensor([1.0, 1.0, 0.0, 0.0]))  # exactly the network pruned to them
    assert torch.allclose(switch_factor(torch.tensor([0.7, 0.1, 0.1, 0.1]), "cap", share=0.5),
                          torch.tensor([1.0, 0.2, 0.2, 0.2]))  # capped at the trained scale, never amplified
    gate = switch_factor(s, "gate", steepness=3.0)
    assert gate[0] == 0 and torch.allclose(switch_factor(torch.full((4,), 0.25), "gate"), torch.ones(4))
    assert gate.max() <= 1 / torch.tanh(torch.tensor(3.0)) + 1e-6  # saturates: never amplifies much
    with pytest.raises(ValueError, match="switch form must be one of"):
        switch_factor(s, "magic")


def test_temperature_is_fitted_beside_the_switches(bn_net):
    from pyro_dirichlet import FitConfig, fit_switches
    from pyro_dirichlet.data import ArrayDataset

    gen = torch.Generator().manual_seed(0)
    data = ArrayDataset(torch.randint(0, 256, (64, 1, 12, 12), dtype=torch.uint8, generator=gen),
                        torch.randint(0, 3, (64,), generator=gen), (0.5,), (0.25,))
    switched = SwitchedNetwork(bn_net, ["conv2", "fc1"], SwitchConfig(temperature=True))
    trace = poutine.trace(switched.model).get_trace(data.inputs(torch.arange(4)), data.labels[:4])
    assert "log_temperature" in trace.nodes
    for estimator in ("mean", "mc"):
        guide, history = fit_switches(switched, data, FitConfig(estimator=estimator, num_samples=2, epochs=2,
                                                                mode="layerwise", lr=0.1), progress=False)
        assert guide.log_temperature is not None and history[-1]["temperature"] != 1.0
