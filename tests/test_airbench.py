"""The testbed network and its recipe: size, whitening, a resumable deterministic run, test-time augmentation."""
import torch

import pyro_dirichlet as pdl
from pyro_dirichlet.airbench import AirbenchConfig, init_whitening, train_airbench, tta_logits
from pyro_dirichlet.models import build_model


def test_the_paper_network_size():
    net = build_model("airbench94")
    assert sum(p.numel() for p in net.parameters()) == 1_972_792
    assert pdl.count_macs(net, net.input_shape) == 118_147_360
    assert not net.whiten.weight.requires_grad and not net.block1.norm1.weight.requires_grad


def test_whitening_filters_decorrelate_the_patches():
    g = torch.Generator().manual_seed(0)
    mix = torch.tensor([[1.0, 0.8, 0.6], [0.0, 0.6, 0.5], [0.0, 0.0, 0.4]])
    images = torch.einsum("ij,njhw->nihw", mix, torch.randn(200, 3, 16, 16, generator=g))
    images = images + torch.nn.functional.avg_pool2d(images, 3, 1, 1)  # spatially correlated too
    net = build_model("airbench94")
    init_whitening(net.whiten, images)
    patches = images.unfold(2, 2, 1).unfold(3, 2, 1).transpose(1, 3).reshape(-1, 12)
    w = net.whiten.weight[:12].reshape(12, 12)
    cov = torch.cov((patches @ w.T).T, correction=0)
    assert torch.allclose(cov, torch.eye(12), atol=0.05)
    assert torch.equal(net.whiten.weight[12:], -net.whiten.weight[:12])


def tiny_data():
    g = torch.Generator().manual_seed(1)
    images = (torch.rand(2048, 3, 32, 32, generator=g) * 255).to(torch.uint8)
    labels = images.float().mean((2, 3)).argmax(1)  # the brightest colour channel: learnable
    return pdl.ArrayDataset(images, labels, (0.5,) * 3, (0.25,) * 3)


def test_a_run_is_deterministic_and_resumes(tmp_path):
    data, cfg = tiny_data(), AirbenchConfig(epochs=2, whiten_bias_epochs=1, seed=0)
    torch.manual_seed(0)
    a = build_model("airbench94", num_classes=3)
    history = train_airbench(a, data, cfg, checkpoint=tmp_path / "a.ckpt", progress=False)
    assert [h["steps"] for h in history] == [2, 4] and all(0 < h["loss"] < 10 for h in history)
    torch.manual_seed(0)
    b = build_model("airbench94", num_classes=3)
    train_airbench(b, data, cfg, progress=False)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    torch.manual_seed(0)
    c = build_model("airbench94", num_classes=3)
    assert train_airbench(c, data, cfg, checkpoint=tmp_path / "a.ckpt", progress=False) == history  # resumed, done
    assert torch.equal(c.head.weight, a.head.weight)


def test_tta_of_a_constant_image_is_the_plain_output():
    net = build_model("airbench94").eval()
    x = torch.full((2, 3, 32, 32), 0.3)
    with torch.no_grad():
        assert torch.allclose(tta_logits(net, x), net(x), atol=1e-5)
