import pytest
import torch
import torch.nn.functional as F

import pyro_dirichlet as pdl
from pyro_dirichlet.data import ArrayDataset
from pyro_dirichlet.models import build_model
from pyro_dirichlet.training import crop_flip, lr_factor


def test_crop_flip_takes_a_window_of_the_padded_image():
    x = torch.randn(64, 3, 8, 8)
    y = crop_flip(x, torch.Generator().manual_seed(0))
    padded = F.pad(x, (4, 4, 4, 4))
    flipped = 0
    for b in range(64):
        windows = [padded[b, :, i:i + 8, j:j + 8] for i in range(9) for j in range(9)]
        plain = any(torch.equal(y[b], w) for w in windows)
        mirrored = any(torch.equal(y[b].flip(-1), w) for w in windows)
        assert plain or mirrored
        flipped += mirrored and not plain
    assert 10 < flipped < 54  # about half are flipped
    again = crop_flip(x, torch.Generator().manual_seed(0))
    assert torch.equal(y, again) and not torch.equal(y, x)


def test_onecycle_schedule_warms_up_then_anneals():
    factors = [lr_factor("onecycle", step, 100) for step in range(101)]
    assert factors[0] == 0.1 and max(factors) == factors[15] == 1.0 and factors[-1] == 0.0
    assert all(a <= b for a, b in zip(factors[:15], factors[1:16]))
    assert all(a >= b for a, b in zip(factors[15:], factors[16:]))


def test_fast_path_options_train_a_tiny_vgg():
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=gen)
    labels = (images.float().mean(dim=(1, 2, 3)) > 127.5).long()  # brightness: learnable
    data = ArrayDataset(images, labels, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    torch.manual_seed(0)
    net = build_model("vgg16", [4] * 13 + [8, 8])
    cfg = pdl.TrainConfig(epochs=3, batch_size=16, optimizer="sgd", lr=0.05, schedule="onecycle",
                          label_smoothing=0.1, augment=True, channels_last=True)
    history = pdl.train(net, data, cfg, progress=False)
    assert len(history) == 3 and all(torch.isfinite(torch.tensor(h["loss"])) for h in history)
    assert net.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert 0 <= pdl.evaluate(net, data) <= 100


def test_subset_and_split_keep_source_indices():
    data = ArrayDataset(torch.zeros(50, 1, 2, 2, dtype=torch.uint8), torch.arange(50) % 3, (0.5,), (0.25,))
    part = data.subset(30)
    assert torch.equal(part.labels, part.source % 3)  # labels follow their source index
    rest, held = part.split(10)
    assert len(rest) == 20 and len(held) == 10
    assert sorted(rest.source.tolist() + held.source.tolist()) == sorted(part.source.tolist())
    assert torch.equal(held.labels, held.source % 3)
    with pytest.raises(ValueError, match="cannot hold out 30 of 30"):
        part.split(30)


def _mlp(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))


def test_distill_loss_is_the_weighted_sum_and_vanishes_on_the_teacher():
    teacher, x = _mlp(0), torch.randn(8, 3, 4, 4)
    hard = torch.tensor(2.0)
    assert pdl.Distill(teacher, weight=0.25).loss(teacher(x), x, hard).item() == pytest.approx(0.75 * 2.0, abs=1e-5)
    other = _mlp(1)(x)
    T = 4.0
    kl = (F.softmax(teacher(x) / T, -1) * (F.log_softmax(teacher(x) / T, -1) - F.log_softmax(other / T, -1))).sum(-1)
    assert pdl.Distill(teacher, weight=1.0).loss(other, x, hard).item() == pytest.approx(T * T * kl.mean().item(),
                                                                                        rel=1e-4)
    with pytest.raises(ValueError, match="0 < weight <= 1"):
        pdl.Distill(teacher, weight=0.0)


def test_distillation_teaches_the_teachers_predictions_and_keys_the_checkpoint(tmp_path):
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (256, 3, 4, 4), dtype=torch.uint8, generator=gen)
    data = ArrayDataset(images, torch.zeros(256, dtype=torch.long), (0.5,) * 3, (0.25,) * 3)  # every label 0
    teacher = _mlp(0)
    x = data.inputs(torch.arange(256))
    taught = teacher(x).argmax(-1)
    assert taught.unique().numel() > 1  # the teacher disagrees with the labels
    cfg = pdl.TrainConfig(epochs=30, batch_size=32, lr=1e-2)
    plain, distilled = _mlp(1), _mlp(1)
    pdl.train(plain, data, cfg, progress=False)
    pdl.train(distilled, data, cfg, progress=False, distill=pdl.Distill(teacher, weight=1.0),
              checkpoint=tmp_path / "ft.ckpt")
    agree = lambda net: (net(x).argmax(-1) == taught).float().mean().item()  # noqa: E731
    assert agree(distilled) > 0.9 and agree(plain) == (taught == 0).float().mean().item()
    assert teacher.training and all(p.requires_grad for p in teacher.parameters())  # handed back as found
    with pytest.raises(pdl.CheckpointError, match="different run"):  # a plain run never resumes a distilled one
        pdl.train(_mlp(1), data, cfg, progress=False, checkpoint=tmp_path / "ft.ckpt")


def test_cpu_bf16_trains_under_autocast_and_keys_the_checkpoint(tmp_path):
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 3, 4, 4), dtype=torch.uint8, generator=gen)
    data = ArrayDataset(images, torch.randint(0, 4, (64,), generator=gen), (0.5,) * 3, (0.25,) * 3)
    cfg = pdl.TrainConfig(epochs=1, batch_size=32, lr=1e-2)
    for cpu_bf16, dtype in ((False, torch.float32), (True, torch.bfloat16)):
        net, seen = _mlp(0), set()
        first = next(m for m in net.modules() if isinstance(m, torch.nn.Linear))
        first.register_forward_hook(lambda m, i, out: seen.add(out.dtype) if m.training else None)
        pdl.train(net, data, cfg, progress=False, cpu_bf16=cpu_bf16,
                  checkpoint=tmp_path / f"{cpu_bf16}.ckpt")
        assert seen == {dtype} and all(p.dtype == torch.float32 for p in net.parameters())  # fp32 master weights
    with pytest.raises(pdl.CheckpointError, match="different run"):  # an fp32 run never resumes a bf16 one
        pdl.train(_mlp(0), data, cfg, progress=False, checkpoint=tmp_path / "True.ckpt")
