"""What the two resumable epoch loops (:func:`.training.train`, :func:`.fit.fit_switches`) share:
resuming from a checkpoint of the same run, and ending an epoch (the loss checked, reported,
the state written atomically by rank 0)."""
from __future__ import annotations

import math
from pathlib import Path

from tqdm.auto import tqdm

from . import distributed
from .io import CheckpointError, load_torch, save_torch


def resume(checkpoint: str | Path | None, key: str, identity, what: str, device) -> dict | None:
    """The state saved at ``checkpoint`` (None if there is none); refuses one whose ``state[key]``
    is not ``identity`` (another run's), naming both."""
    if checkpoint is None or not Path(checkpoint).exists():
        return None
    state = load_torch(checkpoint, map_location=device)
    if state.get(key) != identity:
        raise CheckpointError(f"{what} checkpoint {checkpoint} belongs to a different run ({state.get(key)}, now "
                              f"{identity}); delete it or use another run directory")
    return state


def end_epoch(history: list[dict], entry: dict, loss_name: str, lr: float, desc: str, progress: bool,
              checkpoint: str | Path | None, state: dict) -> None:
    """Append ``entry`` (``"loss"``, ``"seconds"``) to ``history``; refuse a non-finite loss (the
    checkpoint keeps the last finite epoch); report it; save ``state`` (rank 0); wait for the ranks."""
    history.append(entry)
    if not math.isfinite(entry["loss"]):
        raise ValueError(f"the {loss_name} became {entry['loss']} in {desc}: lower the learning rate (now {lr}); "
                         "the checkpoint keeps the last epoch with a finite loss")
    if progress and distributed.is_main():
        tqdm.write(f"{desc}: {loss_name} {entry['loss']:.4f} ({entry['seconds']:.1f} s)")
    if checkpoint is not None and distributed.is_main():
        save_torch(state, checkpoint)
    distributed.barrier()
