"""Atomic file writes and checkpoint loading with clear errors.

Every file the project writes goes through :func:`atomic_write`: the content is written to a
temporary file in the same folder and moved into place with ``os.replace``, so an
interrupted run never leaves a half-written file behind. A step's outputs go into a
folder named by a hash of everything that produced them (:func:`keyed_folder`), so a
changed setting never finds an old result.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


class CheckpointError(RuntimeError):
    """A checkpoint or saved model could not be read or does not fit the current run."""


_UMASK = os.umask(0)
os.umask(_UMASK)


class StorageError(RuntimeError):
    """A file could not be written because the disk is full."""


def _disk_full(e: BaseException) -> bool:
    text = str(e)
    return (isinstance(e, OSError) and e.errno == errno.ENOSPC) or "No space left" in text or "unexpected pos" in text


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result to ``path`` atomically. A full disk raises
    :class:`StorageError` naming the file and the space; nothing half-written is kept."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp's 0600 would ignore the user's umask
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:
        if not _disk_full(e):
            raise
        written = os.path.getsize(tmp) if os.path.exists(tmp) else 0
        raise StorageError(
            f"could not write {path}: the disk is full ({shutil.disk_usage(path.parent).free:,} bytes free; "
            f"{written:,} bytes of it were written when the space ran out, and removed). Free some space or use "
            "another run directory, then run the same command again: it resumes from the last checkpoint") from e
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def complete(folder: str | os.PathLike, *names: str) -> bool:
    """Whether a finished step's folder holds every one of its output files (a step whose
    outputs were deleted is redone, never reported as done)."""
    return all((Path(folder) / name).is_file() for name in names)


def save_torch(obj: Any, path: str | os.PathLike) -> Path:
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def save_json(obj: Any, path: str | os.PathLike) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")

    return atomic_write(path, write)


def save_text(text: str, path: str | os.PathLike) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def load_torch(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """Load a file written by :func:`save_torch`; a missing or corrupt file raises CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for truncated/garbled files
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a pyro-dirichlet checkpoint ({type(e).__name__}: {e}). "
            "Delete it to start this step over, or point to another file."
        ) from e


def load_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON ({e}); re-create it or point to another file") from e


def check_writable(folder: str | os.PathLike) -> Path:
    """``folder`` (created if missing), or a ValueError naming it if files cannot be written there."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise ValueError(f"cannot write to {folder} ({e.strerror}); choose a writable folder "
                         "or fix its permissions") from None
    return folder


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of the file at ``path``, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def settings_key(settings: Any) -> str:
    """10 hex digits of the SHA-256 of ``settings`` as canonical JSON (sorted keys)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]


def keyed_path(parent: str | os.PathLike, prefix: str, settings: dict) -> Path:
    """:func:`keyed_folder`'s path, neither created nor checked (to ask whether a step was done)."""
    return Path(parent) / f"{prefix}-{settings_key(settings)}"


def keyed_folder(parent: str | os.PathLike, prefix: str, settings: dict) -> Path:
    """``<parent>/<prefix>-<settings_key(settings)>``, with ``config.json`` holding ``settings``.

    The folder's name changes with any setting, so a step run with other settings writes
    elsewhere. ``config.json`` is written on first use and checked on every later one.
    """
    folder = keyed_path(parent, prefix, settings)
    config = folder / "config.json"
    canonical = json.loads(json.dumps(settings))
    if config.exists():
        if load_json(config) != canonical:
            raise CheckpointError(f"{config} does not hold the settings its folder name was made from; "
                                  "delete the folder to recompute it")
    else:
        save_json(canonical, config)
    return folder
