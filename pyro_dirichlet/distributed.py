"""Several processes under ``torchrun``: one per device, data sharded with ``DistributedSampler``.

``init()`` joins the process group that ``torchrun`` describes in the environment
(``WORLD_SIZE`` > 1; NCCL on CUDA, gloo on CPU) and is a no-op otherwise. Then:

- :func:`pyro_dirichlet.train` wraps the network in ``DistributedDataParallel`` and
  :func:`pyro_dirichlet.fit_switches` averages the ``log_phi`` gradients over ranks; each
  rank takes its own shard of every epoch's shuffled order. The switch model's plate keeps
  the global N, so each rank's minibatch loss is an unbiased estimate of the full ELBO
  (scale N/B_local) and the averaged gradient is that of the union batch.
- Checkpoints and results are written by rank 0 only (:func:`is_main`).
"""
from __future__ import annotations

import math
import os

import torch
import torch.distributed as dist


def init() -> torch.device | None:
    """Join the ``torchrun`` process group if ``WORLD_SIZE`` > 1; returns this rank's device
    (``cuda:LOCAL_RANK`` when CUDA is available) or None when running alone."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    cuda = torch.cuda.is_available()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    if cuda:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        return device
    return torch.device("cpu")


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if world_size() > 1 else 0


def is_main() -> bool:
    return rank() == 0


def shard() -> tuple[int, int] | None:
    """``(rank, world_size)`` when running distributed, else None."""
    return (rank(), world_size()) if world_size() > 1 else None


def shard_length(n: int) -> int:
    """Examples per rank in an epoch of n (``DistributedSampler`` pads to a multiple of the world size)."""
    return math.ceil(n / world_size())


def average_gradients_hook(grad: torch.Tensor) -> torch.Tensor:
    """Tensor hook: the mean of ``grad`` over ranks."""
    grad = grad.clone()
    dist.all_reduce(grad)
    return grad / world_size()


def mean_over_ranks(value: float, device: torch.device) -> float:
    if world_size() == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.item() / world_size()


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()
