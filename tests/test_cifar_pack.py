"""The packed CIFAR-10 JPEG copy (one file for a GPU machine) loads as the JPEG folder does."""
import pytest
import torch
from torchvision.io import encode_jpeg

import pyro_dirichlet as pdl
from pyro_dirichlet.cifar10 import CIFAR10_CLASSES, PACKED_CIFAR10, pack_cifar10

CUDA = torch.cuda.is_available()


@pytest.fixture
def jpeg_root(tmp_path, monkeypatch):
    """A CIFAR-10-shaped JPEG folder: 2 train and 1 test image per class, random pixels."""
    monkeypatch.setenv("PYRO_DIRICHLET_CACHE", str(tmp_path / "cache"))
    gen = torch.Generator().manual_seed(0)
    root = tmp_path / "data"
    for split, n in (("train", 2), ("test", 1)):
        for cls in CIFAR10_CLASSES:
            (root / "cifar10-jpg" / split / cls).mkdir(parents=True)
            for i in range(n):
                image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=gen)
                (root / "cifar10-jpg" / split / cls / f"{i}.jpg").write_bytes(encode_jpeg(image).numpy().tobytes())
    return root


def test_the_packed_copy_loads_as_the_jpeg_folder(jpeg_root, tmp_path):
    packed = tmp_path / "packed"
    path = pack_cifar10(jpeg_root / "cifar10-jpg", packed / PACKED_CIFAR10)
    assert path.stat().st_size < sum(p.stat().st_size for p in jpeg_root.rglob("*.jpg")) + 10_000  # bytes + index
    for train, n in ((True, 20), (False, 10)):
        folder = pdl.load_cifar10(jpeg_root, train=train, download=False)
        for _ in range(2):  # decoded, then from the decode cache
            pack = pdl.load_cifar10(packed, train=train, download=False)
            assert len(pack) == n and torch.equal(pack.images, folder.images) and torch.equal(pack.labels, folder.labels)
            assert pack.labels.tolist() == sorted(pack.labels.tolist()) and pack.name == folder.name


def test_a_file_that_is_no_pack_is_refused(tmp_path):
    torch.save({"something": "else"}, tmp_path / PACKED_CIFAR10)
    with pytest.raises(pdl.DataNotFoundError, match="pack_cifar10.py"):
        pdl.load_cifar10(tmp_path, download=False)


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_the_gpu_decodes_the_pack_like_the_cpu(jpeg_root, tmp_path):
    path = pack_cifar10(jpeg_root / "cifar10-jpg", tmp_path / "packed" / PACKED_CIFAR10)
    cpu = pdl.load_cifar10(path.parent, train=True, download=False)
    gpu = pdl.load_cifar10(path.parent, train=True, download=False, device="cuda")
    assert gpu.images.is_cuda and gpu.labels.is_cuda and torch.equal(gpu.labels.cpu(), cpu.labels)
    assert (gpu.images.cpu().int() - cpu.images.int()).abs().float().mean() < 1.0  # nvJPEG's IDCT may round apart
