"""Switch posteriors as ArviZ ``InferenceData``.

``posterior``: one variable per switched layer, ``(chain=1, draw, <layer>_channel)``, draws
from ``Dir(phi_l)``. ``constant_data``: ``phi`` per layer with the same channel dimension,
from which :func:`posterior_means` reads the exact means ``E_q[s_l] = phi_l / sum(phi_l)``
(the draws' means agree with them within Monte-Carlo error).
"""
from __future__ import annotations

import os
from pathlib import Path

import arviz as az
import numpy as np
import torch

from .io import CheckpointError, atomic_write
from .switches import SwitchGuide


def channel_dim(layer: str) -> str:
    return f"{layer}_channel"


def posterior_idata(guide: SwitchGuide, num_draws: int = 1000, seed: int = 0) -> az.InferenceData:
    """Draw ``num_draws`` switch vectors per layer from the fitted guide."""
    posterior, phis, dims = {}, {}, {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name in guide.names:
            phi = guide.phi(name).detach().double().cpu()
            posterior[name] = torch.distributions.Dirichlet(phi).sample((1, num_draws)).numpy()
            phis[name] = phi.numpy()
            dims[name] = [channel_dim(name)]
    return az.from_dict(posterior=posterior, constant_data=phis, dims=dims)


def posterior_means(idata: az.InferenceData) -> dict[str, torch.Tensor]:
    """``{layer: E_q[s] (K,)}`` from the ``phi`` stored in ``idata.constant_data``."""
    means = {}
    for name, phi in idata.constant_data.data_vars.items():
        phi = torch.as_tensor(np.asarray(phi.values), dtype=torch.float64)
        means[name] = phi / phi.sum()
    return means


def summarize(idata: az.InferenceData, hdi_prob: float = 0.94):
    """``az.summary`` (mean, sd, HDI; unrounded) of every switch, one row per ``layer[channel]``."""
    return az.summary(idata, kind="stats", hdi_prob=hdi_prob, round_to="none")


def save_idata(idata: az.InferenceData, path: str | os.PathLike) -> Path:
    return atomic_write(path, lambda tmp: idata.to_netcdf(tmp, engine="h5netcdf"))


def load_idata(path: str | os.PathLike) -> az.InferenceData:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"posterior file {path} does not exist; run `pyro-dirichlet fit` first")
    try:
        idata = az.from_netcdf(path, engine="h5netcdf")
        idata.load()
        return idata
    except Exception as e:
        raise CheckpointError(f"posterior file {path} is corrupt or not a netCDF InferenceData ({e}); re-run the fit") from e
