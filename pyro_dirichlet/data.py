"""Datasets as in-memory uint8 tensors, normalised per batch on the target device.

The data root is one setting: the ``root`` argument (``--data-root`` on the command line),
else the environment variable ``PYRO_DIRICHLET_DATA``, else ``./data``. MNIST is read by
torchvision from ``<root>/MNIST/raw`` and downloaded there if missing and allowed; CIFAR-10
by :mod:`.cifar10`.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch


__all__ = ["DATA_ENV", "DataNotFoundError", "data_root", "ArrayDataset", "FeatureDataset", "load_mnist"]

DATA_ENV = "PYRO_DIRICHLET_DATA"
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)


class DataNotFoundError(FileNotFoundError):
    """The data set is not on disk and could not be downloaded."""


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data folder: ``root`` if given, else ``$PYRO_DIRICHLET_DATA``, else ``./data``."""
    return Path(root if root is not None else os.environ.get(DATA_ENV, "data")).expanduser()


class _Batched:
    """Length, device and minibatches of a data set with ``labels`` ``(N,)`` and ``inputs(idx)``."""

    labels: torch.Tensor

    def __len__(self) -> int:
        return self.labels.shape[0]

    @property
    def device(self) -> torch.device:
        return self.labels.device

    def inputs(self, idx: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def batches(
        self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None, drop_last: bool = False,
        shard: tuple[int, int] | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Yield ``(x (B, ...), y (B, ...), idx (B,))`` on the data's device (``shard``: see :func:`batch_indices`)."""
        for idx in batch_indices(len(self), batch_size, shuffle, generator, drop_last, self.device, shard):
            yield self.inputs(idx), self.labels[idx], idx


@dataclass
class ArrayDataset(_Batched):
    """images: ``(N, C, H, W)`` uint8; labels: ``(N,)`` int64 classes, or dense targets ``(N, ...)``
    (any likelihood's, :mod:`.likelihoods`); per-channel mean/std in [0, 1] units.
    ``inputs`` are normalised float32 ``(x / 255 - mean) / std``. ``source``: ``(N,)`` int64 on
    the CPU, each example's index in the full data set it was loaded from."""

    images: torch.Tensor
    labels: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    name: str = ""
    source: torch.Tensor | None = None

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(
                f"ArrayDataset holds uint8 images (N, C, H, W) in 0..255 and normalises them per batch; got "
                f"{self.images.dtype} of shape {tuple(self.images.shape)}. Convert floats in [0, 1] with "
                "(images * 255).round().to(torch.uint8), or use FeatureDataset for float features")
        check_labels_shape(self.labels, self.images.shape[0])
        if not len(self.mean) == len(self.std) == self.images.shape[1] or min(self.std) <= 0:
            raise ValueError(f"mean {self.mean} and std {self.std} need one value per channel "
                             f"({self.images.shape[1]}), std > 0")
        if self.source is None:
            self.source = torch.arange(len(self.labels))

    def to(self, device: torch.device | str) -> "ArrayDataset":
        return ArrayDataset(self.images.to(device), self.labels.to(device), self.mean, self.std, self.name, self.source)

    def take(self, idx: torch.Tensor) -> "ArrayDataset":
        """The examples at positions ``idx`` (int64, any device)."""
        on_device = idx.to(self.device)
        return ArrayDataset(self.images[on_device], self.labels[on_device], self.mean, self.std, self.name,
                            self.source[idx.cpu()])

    def subset(self, n: int | None, seed: int = 0) -> "ArrayDataset":
        """A random subset of n examples (fixed by ``seed``); all of them if n is None or >= N."""
        if n is not None and n < 1:
            raise ValueError(f"a subset needs at least one example, got {n} (give N >= 1, or no subset for all "
                             f"{len(self)})")
        if n is None or n >= len(self):
            return self
        return self.take(torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n])

    def split(self, n: int, seed: int = 1) -> tuple["ArrayDataset", "ArrayDataset"]:
        """``(rest, held_out)``: ``n`` random examples (fixed by ``seed``) held out, the rest in order."""
        if not 0 <= n < len(self):
            raise ValueError(f"cannot hold out {n} of {len(self)} examples; choose 0 <= n < {len(self)}")
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        return self.take(order[n:].sort().values), self.take(order[:n].sort().values)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``(B, C, H, W)`` -> float32 ``(x / 255 - mean) / std``."""
        shape = (1, -1, 1, 1)
        mean = torch.tensor(self.mean, device=images.device).view(shape)
        std = torch.tensor(self.std, device=images.device).view(shape)
        return (images.float() / 255 - mean) / std

    def inputs(self, idx: torch.Tensor) -> torch.Tensor:
        return self.normalize(self.images[idx])


@dataclass
class FeatureDataset(_Batched):
    """features: ``(N, ...)`` float (tabular ``(N, D)``, sequences ``(N, C, T)``); labels: ``(N,)``
    (int64 classes or float 0/1) or dense targets ``(N, ...)`` (e.g. per-frame ``(N, T, C)``). Same
    interface as :class:`ArrayDataset` for simulated, tabular or sequence data."""

    features: torch.Tensor
    labels: torch.Tensor
    name: str = ""

    def __post_init__(self):
        check_labels_shape(self.labels, self.features.shape[0])
        bad = ~torch.isfinite(self.features).reshape(len(self.features), -1).all(1)
        if bad.any():
            rows = torch.nonzero(bad).flatten()
            raise ValueError(f"{len(rows)} example(s) have NaN or infinite features (rows {rows[:5].tolist()}"
                             f"{'...' if len(rows) > 5 else ''}); remove or impute them first")

    def to(self, device: torch.device | str) -> "FeatureDataset":
        return FeatureDataset(self.features.to(device), self.labels.to(device), self.name)

    def inputs(self, idx: torch.Tensor) -> torch.Tensor:
        return self.features[idx]


def check_labels_shape(labels: torch.Tensor, n: int) -> None:
    if labels.dim() < 1 or labels.shape[0] != n:
        raise ValueError(f"labels must be one per example: class labels ({n},) or dense targets ({n}, ...); "
                         f"got {tuple(labels.shape)}")


def check_labels(data: _Batched, num_outputs: int) -> None:
    """Raise a ValueError naming the fix if ``data`` is empty or holds labels a network with
    ``num_outputs`` logits cannot predict (classes ``0..C-1``; one logit: 0 or 1)."""
    if len(data) == 0:
        raise ValueError("the data set is empty (0 examples); check the subset size (subset(n), n >= 1) and the data folder")
    labels = data.labels
    classes = 2 if num_outputs == 1 else num_outputs
    low, high = labels.min().item(), labels.max().item()
    if low < 0 or high >= classes or (labels.is_floating_point() and not torch.equal(labels, labels.round())):
        raise ValueError(f"labels must be class indices 0..{classes - 1} for a network with {num_outputs} "
                         f"output(s); found labels from {low} to {high}. Relabel the data or give the network "
                         "one output per class")


def batch_indices(
    n: int, batch_size: int, shuffle: bool, generator: torch.Generator | None, drop_last: bool, device: torch.device,
    shard: tuple[int, int] | None = None,
) -> Iterator[torch.Tensor]:
    """Index tensors of consecutive batches of ``range(n)`` (shuffled with ``generator`` on CPU).

    ``shard=(rank, world_size)``: only this rank's part, from ``DistributedSampler`` seeded
    by the generator's seed (every rank draws the same order and takes every
    ``world_size``-th index; the order is padded to a multiple of ``world_size``)."""
    if shard is not None:
        from torch.utils.data import DistributedSampler

        seed = generator.initial_seed() if generator is not None else 0
        sampler = DistributedSampler(range(n), num_replicas=shard[1], rank=shard[0], shuffle=shuffle, seed=seed)
        order = torch.tensor(list(sampler))
        n = len(order)
    else:
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    order = order.to(device)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]


MNIST_SIZES = {"train-images-idx3-ubyte": 47_040_016, "train-labels-idx1-ubyte": 60_008,
               "t10k-images-idx3-ubyte": 7_840_016, "t10k-labels-idx1-ubyte": 10_008}  # the uncompressed IDX files


def load_mnist(root: str | os.PathLike | None = None, train: bool = True, download: bool = True) -> ArrayDataset:
    """MNIST (60,000 train / 10,000 test digits, 1x28x28) from ``<root>/MNIST/raw``."""
    from torchvision.datasets import MNIST

    folder = data_root(root)
    raw = folder / "MNIST" / "raw"
    split = "train" if train else "t10k"
    for name, size in MNIST_SIZES.items():
        path = raw / name
        if name.startswith(split) and path.is_file() and path.stat().st_size != size:
            raise DataNotFoundError(f"MNIST file {path} is corrupt or truncated: {path.stat().st_size:,} bytes, expected "
                                    f"{size:,}. Replace it with the original (or delete it to download it again)")
    try:
        ds = MNIST(str(folder), train=train, download=False)
    except RuntimeError:
        if not download:
            raise DataNotFoundError(_missing_message("MNIST", raw, tried_download=False)) from None
        created = [p for p in (folder, folder / "MNIST", raw) if not p.exists()]
        try:
            ds = MNIST(str(folder), train=train, download=True)
        except Exception as e:
            for p in reversed(created):  # leave no empty folders behind for data that was not found
                if p.is_dir() and not any(p.iterdir()):
                    p.rmdir()
            raise DataNotFoundError(_missing_message("MNIST", raw, tried_download=True, why=e)) from e
    images = ds.data.unsqueeze(1).contiguous()
    return ArrayDataset(images, ds.targets.long(), MNIST_MEAN, MNIST_STD, f"mnist-{'train' if train else 'test'}")


def _missing_message(name: str, looked: Path, tried_download: bool, why: Exception | None = None) -> str:
    reason = f"download failed ({type(why).__name__}: {why})" if tried_download else "download was not allowed"
    return (
        f"{name} not found: looked in {looked.resolve()} and {reason}. "
        f"Point at a folder that holds {name}/raw with root=DIR or the "
        f"environment variable {DATA_ENV}=DIR, or run with internet access to download it there."
    )
