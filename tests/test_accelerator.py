"""The CUDA path: the library's computations on the GPU, checked against the CPU or the math.

They need a CUDA GPU. ``PYRO_DIRICHLET_TEST_DEVICE=cpu`` runs them with the CPU standing in,
which checks the tests themselves, not CUDA. TF32 is off in the comparisons, so both devices
compute in float32 and agree to its rounding.
"""
import json
import os

import pytest
import torch

import pyro_dirichlet as pdl
from pyro_dirichlet.models import build_model

from test_cifar_models import TINY, randomize_batchnorm
from test_cli import TINY as TINY_RUN, run_cli
from test_fit import toy_data

DEVICE = torch.device(os.environ.get("PYRO_DIRICHLET_TEST_DEVICE", "cuda"))
pytestmark = pytest.mark.skipif(DEVICE.type == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(autouse=True)
def float32_matmuls():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.parametrize("name", sorted(TINY))
def test_a_network_trimmed_on_the_device_computes_what_it_does_on_the_cpu(name):
    torch.manual_seed(0)
    net = randomize_batchnorm(build_model(name, **TINY[name]))
    keep = {site: list(range(0, k, 2)) for site, k in pdl.site_sizes(net).items()}  # every other channel
    x = torch.randn(3, *net.input_shape)
    with torch.no_grad():  # trim traces through autograd, which it turns on itself
        on_cpu = pdl.trim(net, keep, net.input_shape)(x)
        small = pdl.trim(net.to(DEVICE), keep, net.input_shape)
        assert all(p.device.type == DEVICE.type for p in small.parameters())
        assert torch.allclose(small(x.to(DEVICE)).cpu(), on_cpu, atol=1e-4, rtol=1e-4)


def test_the_mean_fit_on_the_device_follows_the_cpu_fit(bn_net):
    """Same data order, same deterministic objective: same loss history and posterior."""
    cfg = pdl.FitConfig(estimator="mean", epochs=3, batch_size=50, lr=0.1, mode="joint")
    runs = {}
    for device in ("cpu", DEVICE):
        net = bn_net.to(device)
        guide, history = pdl.fit_switches(pdl.SwitchedNetwork(net, net.prunable_layers), toy_data().to(device), cfg,
                                          progress=False)
        assert all(p.device.type == torch.device(device).type for p in guide.parameters())
        runs[str(device)] = [h["loss"] for h in history], [p.detach().cpu() for p in guide.log_phi]
    (loss_cpu, phi_cpu), (loss_dev, phi_dev) = runs["cpu"], runs[str(DEVICE)]
    assert loss_dev == pytest.approx(loss_cpu, rel=1e-3)
    assert all(torch.allclose(a, b, rtol=1e-2, atol=1e-3) for a, b in zip(phi_cpu, phi_dev))


def test_dirichlet_samples_on_the_device_carry_the_implicit_gradient():
    """d/d alpha E[w . s] for s ~ Dir(alpha) by reparameterised samples equals the exact
    gradient of w . alpha / alpha_0: (w_k - w . alpha / alpha_0) / alpha_0."""
    alpha = torch.tensor([0.5, 2.0, 5.0, 1.0], device=DEVICE, requires_grad=True)
    w = torch.tensor([1.0, -2.0, 0.5, 3.0], device=DEVICE)
    torch.manual_seed(0)
    s = torch.distributions.Dirichlet(alpha).rsample((400_000,))
    (s @ w).mean().backward()
    a0 = alpha.detach().sum()
    exact = (w - w @ alpha.detach() / a0) / a0
    assert torch.allclose(alpha.grad, exact, atol=0.01), (alpha.grad, exact)


def test_the_mc_fit_runs_on_the_device(bn_net):
    net = bn_net.to(DEVICE)
    cfg = pdl.FitConfig(estimator="mc", num_samples=4, epochs=3, batch_size=50, lr=0.1, mode="joint")
    guide, history = pdl.fit_switches(pdl.SwitchedNetwork(net, net.prunable_layers), toy_data().to(DEVICE), cfg,
                                      progress=False)
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in history)
    assert all(p.device.type == DEVICE.type for p in guide.parameters())
    assert all(not torch.allclose(p.exp(), torch.full_like(p, cfg.init_concentration)) for p in guide.log_phi)


def test_bf16_training_on_the_device_learns_and_keeps_float32_weights():
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (256,), generator=gen)
    brightness = 128 * labels[:, None, None, None]  # the label: learnable
    images = (torch.randint(0, 128, (256, 3, 32, 32), generator=gen) + brightness).to(torch.uint8)
    data = pdl.ArrayDataset(images, labels, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)).to(DEVICE)
    torch.manual_seed(0)
    net = build_model("vgg16", [8] * 13 + [16, 16]).to(DEVICE)
    cfg = pdl.TrainConfig(epochs=6, batch_size=32, optimizer="sgd", lr=0.05, schedule="onecycle",
                          channels_last=True)
    history = pdl.train(net, data, cfg, progress=False)
    assert history[-1]["loss"] < 0.8 * history[0]["loss"]
    assert all(p.dtype == torch.float32 and p.device.type == DEVICE.type for p in net.parameters())
    assert pdl.evaluate(net, data) < 25


def test_the_pipeline_runs_on_the_device(mnist_root, tmp_path, capsys):
    """Data on the device, pretraining (bf16 on CUDA), fit, trim, fine-tuning; the saved network
    reloads on the device with the error the run reported."""
    code, out, err = run_cli(capsys, "run", "--run-dir", str(tmp_path), "--data-root", mnist_root, *TINY_RUN,
                             "--device", str(DEVICE))
    assert code == 0, err
    result = json.loads(out)
    assert result["run"]["architecture"] == "5-8-45-15"
    net, _ = pdl.load_pruned(result["folder"], device=DEVICE)
    test = pdl.load_mnist(mnist_root, train=False).subset(500).to(DEVICE)
    assert next(net.parameters()).device.type == DEVICE.type
    assert pdl.evaluate(net, test) == pytest.approx(result["run"]["error_pct"])
