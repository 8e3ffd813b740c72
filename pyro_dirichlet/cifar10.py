"""CIFAR-10 from the data root (:func:`.data.data_root`), read in this order from:

- the packed JPEG copy ``<root>/cifar10-jpeg.pt`` (:func:`pack_cifar10`: the JPEG bytes of all
  60,000 images, 53 MiB, one file that travels to a GPU machine), decoded by torchvision's
  JPEG decoder, in batches on the GPU when ``load_cifar10(device=)`` names a CUDA device;
- the JPEG copy ``<root>/cifar10-jpg/{train,test}/<class>/*.jpg``;
- torchvision's ``<root>/cifar-10-batches-py`` (downloaded if missing and allowed).

JPEG decoded on the CPU is cached as uint8 tensors in ``$PYRO_DIRICHLET_CACHE`` (default
``~/.cache/pyro-dirichlet``), keyed by the source's path and size (a packed copy: and time).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from .data import ArrayDataset, DataNotFoundError, _missing_message, data_root
from .io import load_torch, save_torch

CACHE_ENV = "PYRO_DIRICHLET_CACHE"
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
PACKED_CIFAR10 = "cifar10-jpeg.pt"
PACK_FORMAT = "pyro-dirichlet CIFAR-10 JPEG pack v1"
DECODE_BATCH = 5000
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def load_cifar10(root: str | os.PathLike | None = None, train: bool = True, download: bool = True,
                 device: torch.device | str | None = None) -> ArrayDataset:
    """CIFAR-10 (50,000 train / 10,000 test, 3x32x32), JPEG copies first (module docstring).
    ``device``: where the data set lives (default CPU); a CUDA device decodes the packed copy there."""
    folder = data_root(root)
    split = "train" if train else "test"
    packed, jpeg_dir = folder / PACKED_CIFAR10, folder / "cifar10-jpg" / split
    if packed.is_file():
        images, labels = _decoded_pack(packed, split, torch.device(device or "cpu"))
        name = f"cifar10-jpg-{split}"
    elif jpeg_dir.is_dir():
        images, labels = _cached_jpeg_folder(jpeg_dir)
        name = f"cifar10-jpg-{split}"
    else:
        from torchvision.datasets import CIFAR10

        try:
            ds = CIFAR10(str(folder), train=train, download=download)
        except Exception as e:
            raise DataNotFoundError(_missing_message("CIFAR-10", jpeg_dir, tried_download=download, why=e)) from e
        images, labels = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(ds.targets)
        name = f"cifar10-{split}"
    data = ArrayDataset(images, labels.long(), CIFAR10_MEAN, CIFAR10_STD, name)
    return data if device is None else data.to(device)


def _jpeg_files(folder: Path) -> list[tuple[int, Path]]:
    """``[(label, path)]`` of ``<folder>/<class>/*.jpg``, classes in CIFAR-10 order."""
    files = [(label, path) for label, cls in enumerate(CIFAR10_CLASSES) for path in sorted((folder / cls).glob("*.jpg"))]
    if not files:
        raise DataNotFoundError(f"no JPEG files under {folder.resolve()}/<class>/; expected the CIFAR-10 JPEG copy "
                                f"with class folders {list(CIFAR10_CLASSES)}")
    return files


def pack_cifar10(jpeg_root: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write ``out`` (``cifar10-jpeg.pt``): for each split of ``<jpeg_root>/{train,test}/<class>/*.jpg``
    the JPEG bytes concatenated ``jpeg`` (uint8), ``offsets`` (int64, N + 1: image i is
    ``jpeg[offsets[i]:offsets[i + 1]]``) and ``labels`` (int64, N), in :func:`load_cifar10`'s order."""
    from torchvision.io import read_file

    state = {"format": PACK_FORMAT, "classes": list(CIFAR10_CLASSES)}
    for split in ("train", "test"):
        files = _jpeg_files(Path(jpeg_root) / split)
        blobs = [read_file(str(path)) for _, path in files]
        offsets = torch.tensor([0, *(len(b) for b in blobs)]).cumsum(0)
        state[split] = {"jpeg": torch.cat(blobs), "offsets": offsets,
                        "labels": torch.tensor([label for label, _ in files])}
    return save_torch(state, out)


def _decoded_pack(path: Path, split: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images (N, 3, 32, 32) uint8 on device, labels (N,))`` of one split of a packed copy."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{split}"
    cache = _cache_path(f"cifar10-jpeg-{split}", key)
    if device.type == "cpu" and cache.exists():
        state = load_torch(cache)
        if state.get("key") == key:
            return state["images"], state["labels"]
    state = load_torch(path)
    if not isinstance(state, dict) or state.get("format") != PACK_FORMAT:
        raise DataNotFoundError(f"{path} is not a packed CIFAR-10 copy ({PACK_FORMAT}); rebuild it with "
                                "python scripts/pack_cifar10.py")
    jpeg, offsets, labels = state[split]["jpeg"], state[split]["offsets"].tolist(), state[split]["labels"]
    blobs = [jpeg[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
    images = torch.cat([_decode(blobs[i:i + DECODE_BATCH], device) for i in range(0, len(blobs), DECODE_BATCH)])
    if device.type == "cpu":
        save_torch({"key": key, "images": images, "labels": labels}, cache)
    return images, labels.to(device)


def _decode(blobs: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    """JPEG byte tensors -> ``(n, 3, H, W)`` uint8 on ``device`` (nvJPEG in one batch on a GPU)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    return torch.stack(decode_jpeg(blobs, mode=ImageReadMode.RGB, device=device))


def _cache_path(stem: str, key: str) -> Path:
    cache_dir = Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "pyro-dirichlet")).expanduser()
    return cache_dir / f"{stem}-{hashlib.sha1(key.encode()).hexdigest()[:12]}.pt"


def _cached_jpeg_folder(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode ``<folder>/<class>/*.jpg`` (classes in CIFAR-10 order) to ``(N, 3, 32, 32)`` uint8
    once; later calls read the cache file, keyed by the folder's path and file count."""
    from torchvision.io import ImageReadMode, decode_jpeg, read_file

    files = _jpeg_files(folder)
    key = f"{folder.resolve()}|{len(files)}"
    cache = _cache_path(f"cifar10-jpg-{folder.name}", key)
    if cache.exists():
        state = load_torch(cache)
        if state.get("key") == key:
            return state["images"], state["labels"]
    images = torch.stack([decode_jpeg(read_file(str(path)), mode=ImageReadMode.RGB) for _, path in files])
    labels = torch.tensor([label for label, _ in files])
    save_torch({"key": key, "images": images, "labels": labels}, cache)
    return images, labels
