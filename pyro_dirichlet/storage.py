"""Saving a pruned network and rebuilding it: the full network trimmed to the saved indices."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn

from .io import CheckpointError, atomic_write, load_json, load_torch, save_json
from .pruning import trim


def save_pruned(net: nn.Module, spec: dict, folder: str | os.PathLike) -> None:
    """Write ``model.pt`` (state_dict) and ``spec.json`` (``{"model", "model_kwargs", "input_shape",
    "kept": {layer: [indices]}, "architecture", ...}``) into ``folder``, each atomically."""
    folder = Path(folder)
    atomic_write(folder / "model.pt", lambda tmp: torch.save(net.state_dict(), tmp))
    save_json(spec, folder / "spec.json")


def load_pruned(folder: str | os.PathLike, build: Callable[[], nn.Module] | None = None,
                device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a pruned network: the full network (from ``build`` or the zoo by ``spec["model"]``),
    trimmed to the saved channel indices, then the saved weights loaded."""
    folder = Path(folder)
    spec = load_json(folder / "spec.json")
    if build is None:
        from pyro_dirichlet.models import build_model

        full = build_model(spec["model"], **spec.get("model_kwargs", {}))
    else:
        full = build()
    pruned = trim(full.to(device), spec["kept"], spec["input_shape"])
    try:
        pruned.load_state_dict(load_torch(folder / "model.pt", map_location=device))
    except RuntimeError as e:
        raise CheckpointError(f"{folder / 'model.pt'} does not match {folder / 'spec.json'}: {e}") from e
    return pruned.eval(), spec
