"""Switch posteriors as ArviZ ``InferenceData``.

``posterior``: one variable per switched site, ``(chain=1, draw, <site>_channel)``, draws
from the guide (any guide: :func:`posterior_idata`). ``constant_data``: ``phi`` per site
(where the guide has one) with the same channel dimension,
from which :func:`posterior_means` reads the exact means ``E_q[s_l] = phi_l / sum(phi_l)``
(the draws' means agree with them within Monte-Carlo error).
"""
from __future__ import annotations

import os
from pathlib import Path

import arviz as az
import numpy as np
import pyro.distributions as dist
import torch
from pyro import poutine

from .io import CheckpointError, atomic_write
from .switches import SwitchGuide


def channel_dim(layer: str) -> str:
    return f"{layer}_channel"


def posterior_idata(guide, num_draws: int = 1000, seed: int = 0, model_args: tuple = (),
                    model_kwargs: dict | None = None) -> az.InferenceData:
    """Draw ``num_draws`` switch vectors per site from a fitted guide, in one layout for any guide.

    The library's :class:`SwitchGuide` draws from ``Dir(phi_l)``. Any other guide (a hand-written
    one with ``Dirichlet`` sites, or one of Pyro's autoguides) is run ``num_draws`` times on
    ``model_args`` / ``model_kwargs`` (what the model takes), and its switch sites are the
    sample sites whose values lie on the simplex ``(K,)``. ``constant_data`` holds ``phi``
    where the guide has one (a ``Dirichlet`` site's concentration); :func:`posterior_means`
    uses it, else the draws' mean.
    """
    posterior, phis, dims = {}, {}, {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if isinstance(guide, SwitchGuide):
            for name in guide.names:
                phi = guide.phi(name).detach().double().cpu()
                posterior[name] = torch.distributions.Dirichlet(phi).sample((1, num_draws)).numpy()
                phis[name] = phi.numpy()
        else:
            draws: dict[str, list[torch.Tensor]] = {}
            for _ in range(num_draws):
                trace = poutine.trace(guide).get_trace(*model_args, **(model_kwargs or {}))
                for name, site in trace.nodes.items():
                    value = site.get("value")
                    if site["type"] != "sample" or not _on_simplex(value):
                        continue
                    draws.setdefault(name, []).append(value.detach().double().cpu())
                    if isinstance(site["fn"], dist.Dirichlet):
                        phis[name] = site["fn"].concentration.detach().double().cpu().numpy()
            if not draws:
                raise ValueError("the guide has no switch sites (sample sites with values on the simplex, shape (K,))")
            posterior = {name: torch.stack(values)[None].numpy() for name, values in draws.items()}
    dims = {name: [channel_dim(name)] for name in posterior}
    return az.from_dict(posterior=posterior, constant_data=phis, dims=dims)


def _on_simplex(value) -> bool:
    if not isinstance(value, torch.Tensor) or value.dim() != 1 or value.numel() < 2:
        return False
    value = value.detach()
    return bool((value >= 0).all()) and abs(float(value.sum()) - 1.0) < 1e-4


def posterior_means(idata: az.InferenceData) -> dict[str, torch.Tensor]:
    """``{site: E_q[s] (K,)}``: exact ``phi / sum(phi)`` where ``idata.constant_data`` holds phi,
    else the mean of the posterior draws."""
    means = {}
    phis = idata.constant_data.data_vars if "constant_data" in idata.groups() else {}
    for name, draws in idata.posterior.data_vars.items():
        if name in phis:
            phi = torch.as_tensor(np.asarray(phis[name].values), dtype=torch.float64)
            means[name] = phi / phi.sum()
        else:
            means[name] = torch.as_tensor(np.asarray(draws.values), dtype=torch.float64).mean((0, 1))
    return means


def plot_forests(idata: az.InferenceData, folder: str | os.PathLike, top: int = 40) -> list[Path]:
    """One ArviZ forest plot per switch site, ``forest-<site>.png`` in ``folder`` (``:`` in a
    site name becomes ``-``), by :func:`plot_forest`."""
    return [plot_forest(idata, name, Path(folder) / f"forest-{name.replace(':', '-')}.png", top)
            for name in idata.posterior.data_vars]


def plot_forest(idata: az.InferenceData, site: str, path: str | os.PathLike, top: int = 40) -> Path:
    """ArviZ forest plot (PNG) of one switch site: its ``top`` channels by posterior mean (all if
    fewer), highest first, with 94% HDIs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mean = posterior_means(idata)[site]
    order = torch.argsort(mean, descending=True)[:top].tolist()
    axes = az.plot_forest(idata, var_names=[site], coords={channel_dim(site): order}, combined=True,
                          hdi_prob=0.94, figsize=(6, 1.2 + 0.22 * len(order)))
    shown = f"top {len(order)} of {len(mean)}" if len(order) < len(mean) else f"all {len(mean)}"
    axes[0].set_title(f"{site}: switch posterior, {shown} channels by mean (94% HDI)", fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: axes[0].figure.savefig(tmp, dpi=90, format="png", bbox_inches="tight"))
    plt.close(axes[0].figure)
    return path


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
        raise CheckpointError(f"posterior file {path} is corrupt or not a netCDF InferenceData ({e}); delete it and "
                              "run the fit again (it is rebuilt from the fit's checkpoint)") from e
