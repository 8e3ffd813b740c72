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
