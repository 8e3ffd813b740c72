"""Datasets as in-memory uint8 tensors, normalised per batch on the target device.

The data root is one setting: the ``root`` argument (``--data-root`` on the command line),
else the environment variable ``PYRO_DIRICHLET_DATA``, else ``./data``. MNIST is read by
torchvision from ``<root>/MNIST/raw`` and downloaded there if missing and allowed.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

DATA_ENV = "PYRO_DIRICHLET_DATA"
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)


class DataNotFoundError(FileNotFoundError):
    """The data set is not on disk and could not be downloaded."""


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data folder: ``root`` if given, else ``$PYRO_DIRICHLET_DATA``, else ``./data``."""
    return Path(root if root is not None else os.environ.get(DATA_ENV, "data")).expanduser()


@dataclass
class ArrayDataset:
    """images: ``(N, C, H, W)`` uint8; labels: ``(N,)`` int64; per-channel mean/std in [0, 1] units."""

    images: torch.Tensor
    labels: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    name: str = ""

    def __len__(self) -> int:
        return self.labels.shape[0]

    @property
    def device(self) -> torch.device:
        return self.images.device

    def to(self, device: torch.device | str) -> "ArrayDataset":
        return ArrayDataset(self.images.to(device), self.labels.to(device), self.mean, self.std, self.name)

    def subset(self, n: int | None, seed: int = 0) -> "ArrayDataset":
        """A random subset of n examples (fixed by ``seed``); all of them if n is None or >= N."""
        if n is None or n >= len(self):
            return self
        idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n].to(self.device)
        return ArrayDataset(self.images[idx], self.labels[idx], self.mean, self.std, self.name)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``(B, C, H, W)`` -> float32 ``(x / 255 - mean) / std``."""
        shape = (1, -1, 1, 1)
        mean = torch.tensor(self.mean, device=images.device).view(shape)
        std = torch.tensor(self.std, device=images.device).view(shape)
        return (images.float() / 255 - mean) / std

    def batches(
        self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None, drop_last: bool = False
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Yield ``(x float (B, C, H, W), y (B,), idx (B,))`` on the data's device."""
        for idx in batch_indices(len(self), batch_size, shuffle, generator, drop_last, self.device):
            yield self.normalize(self.images[idx]), self.labels[idx], idx


@dataclass
class FeatureDataset:
    """features: ``(N, D)`` float; labels: ``(N,)`` (int64 classes or float 0/1). Same
    interface as :class:`ArrayDataset` for fitting switches on simulated or tabular data."""

    features: torch.Tensor
    labels: torch.Tensor
    name: str = ""

    def __len__(self) -> int:
        return self.labels.shape[0]

    @property
    def device(self) -> torch.device:
        return self.features.device

    def to(self, device: torch.device | str) -> "FeatureDataset":
        return FeatureDataset(self.features.to(device), self.labels.to(device), self.name)

    def batches(
        self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None, drop_last: bool = False
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Yield ``(x (B, D), y (B,), idx (B,))`` on the data's device."""
        for idx in batch_indices(len(self), batch_size, shuffle, generator, drop_last, self.device):
            yield self.features[idx], self.labels[idx], idx


def batch_indices(
    n: int, batch_size: int, shuffle: bool, generator: torch.Generator | None, drop_last: bool, device: torch.device
) -> Iterator[torch.Tensor]:
    """Index tensors of consecutive batches of ``range(n)`` (shuffled with ``generator`` on CPU)."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    order = order.to(device)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]


def load_mnist(root: str | os.PathLike | None = None, train: bool = True, download: bool = True) -> ArrayDataset:
    """MNIST (60,000 train / 10,000 test digits, 1x28x28) from ``<root>/MNIST/raw``."""
    from torchvision.datasets import MNIST

    folder = data_root(root)
    try:
        ds = MNIST(str(folder), train=train, download=False)
    except RuntimeError:
        if not download:
            raise DataNotFoundError(_missing_message("MNIST", folder / "MNIST" / "raw", tried_download=False)) from None
        try:
            ds = MNIST(str(folder), train=train, download=True)
        except Exception as e:
            raise DataNotFoundError(_missing_message("MNIST", folder / "MNIST" / "raw", tried_download=True, why=e)) from e
    images = ds.data.unsqueeze(1).contiguous()
    return ArrayDataset(images, ds.targets.long(), MNIST_MEAN, MNIST_STD, f"mnist-{'train' if train else 'test'}")


def _missing_message(name: str, looked: Path, tried_download: bool, why: Exception | None = None) -> str:
    reason = f"download failed ({type(why).__name__}: {why})" if tried_download else "download was not allowed"
    return (
        f"{name} not found: looked in {looked.resolve()} and {reason}. "
        f"Point at a folder that holds {name}/raw with --data-root DIR or the environment variable {DATA_ENV}=DIR, "
        "or run with internet access to download it there."
    )
