import math

import pytest
import torch

import pyro_dirichlet.epochs as epochs_module
from pyro_dirichlet import ArrayDataset, CheckpointError, FitConfig, SwitchedNetwork, fit_switches
from pyro_dirichlet.io import atomic_write


def toy_data(n=200, seed=0):
    """Images whose label depends only on the first pixels (B, 1, 12, 12) uint8."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 12, 12), generator=gen, dtype=torch.uint8)
    labels = (images[:, 0, 0, :3].float().mean(-1) // 86).long().clamp(max=2)
    return ArrayDataset(images, labels, (0.5,), (0.25,), "toy")


def phis(guide):
    return [p.detach().exp().clone() for p in guide.log_phi]


def test_fit_moves_phi_and_resumes_exactly(bn_net, tmp_path, monkeypatch):
    data = toy_data()
    cfg = FitConfig(estimator="mc", num_samples=4, epochs=3, batch_size=50, lr=0.1, mode="joint")
    guide, history = fit_switches(SwitchedNetwork(bn_net, bn_net.prunable_layers), data, cfg, progress=False)
    full = phis(guide)
    assert len(history) == 3 and all(math.isfinite(h["loss"]) for h in history)
    assert all(not torch.allclose(p, torch.full_like(p, 10.0)) for p in full)

    # interrupt right after the first epoch's checkpoint, then resume
    ckpt = tmp_path / "switches.ckpt"
    real_save = epochs_module.save_torch

    def save_then_stop(obj, path):
        real_save(obj, path)
        raise KeyboardInterrupt

    monkeypatch.setattr(epochs_module, "save_torch", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        fit_switches(SwitchedNetwork(bn_net, bn_net.prunable_layers), data, cfg, checkpoint=ckpt, progress=False)
    monkeypatch.setattr(epochs_module, "save_torch", real_save)
    assert torch.load(ckpt, weights_only=True)["done"] == (0, 1)
    resumed, history2 = fit_switches(SwitchedNetwork(bn_net, bn_net.prunable_layers), data, cfg, checkpoint=ckpt,
                                     progress=False)
    for a, b in zip(full, phis(resumed)):
        assert torch.allclose(a, b, rtol=1e-5)
    assert [h["epoch"] for h in history2] == [1, 2, 3]


def test_checkpoint_of_another_fit_or_corrupt_is_refused(bn_net, tmp_path):
    data = toy_data(100)
    ckpt = tmp_path / "switches.ckpt"
    fit_switches(SwitchedNetwork(bn_net, ["conv1"]), data, FitConfig(epochs=1, batch_size=50), checkpoint=ckpt,
                 progress=False)
    with pytest.raises(CheckpointError, match="belongs to a different run"):
        fit_switches(SwitchedNetwork(bn_net, ["conv1"]), data, FitConfig(epochs=1, batch_size=50, lr=0.2),
                     checkpoint=ckpt, progress=False)
    ckpt.write_bytes(ckpt.read_bytes()[:100])  # truncated, as by a crash of a non-atomic writer
    with pytest.raises(CheckpointError, match="corrupt"):
        fit_switches(SwitchedNetwork(bn_net, ["conv1"]), data, FitConfig(epochs=1, batch_size=50), checkpoint=ckpt,
                     progress=False)


def test_layerwise_fits_one_layer_at_a_time(bn_net):
    data = toy_data(100)
    cfg = FitConfig(mode="layerwise", epochs=1, batch_size=50)
    guide, history = fit_switches(SwitchedNetwork(bn_net, ["conv1", "fc1"]), data, cfg, progress=False)
    assert [h["stage"] for h in history] == [0, 1]
    assert all(not torch.allclose(p, torch.full_like(p, 10.0)) for p in phis(guide))
    assert not any(p.requires_grad for p in guide.log_phi)


@pytest.mark.parametrize("kwargs, message", [
    ({"estimator": "vi"}, "estimator must be one of"),
    ({"mode": "greedy"}, "mode must be one of"),
    ({"num_samples": 0}, "num_samples"),
])
def test_bad_fit_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FitConfig(**kwargs)


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "result.json"
    target.write_text("old")

    def broken(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]
