"""Fitting a Pyro model the library did not write.

A user's model is any Pyro model whose switches are latent ``Dirichlet`` sample sites with one
``(K,)`` vector each (e.g. written with :func:`.switches.dirichlet_switch`) and whose labels are
observed in a data plate. :func:`.fit.fit_switches` calls it once per minibatch as
``model(x, y, idx=idx, num_data=N)``, passing ``idx`` and ``num_data`` only where the model
declares them; a model that declares neither is scaled by ``N / B`` on its observed sites, so
its minibatch ELBO is unbiased for the data set's. The switch sites and their sizes come from a
trace of the model on the first batch, as Pyro's autoguides find theirs.

Staging uses Pyro's handlers on the model: ``beta`` scales the fitted sites' prior
(:class:`ScaleSites`), and in layer-by-layer mode the other switches are fixed (``condition``
at ``1/K``), hidden from the ELBO (``block``) and pass their input through unscaled
(:class:`.switches.Unswitched`), as a :class:`.SwitchedNetwork` leaves them out.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

import pyro.distributions as dist
import torch
import torch.nn as nn
from pyro import poutine
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample

from .frozen import hooks
from .groups import channel_groups, default_example
from .switches import RecordSwitches, Unswitched


def unfold_particles(t: torch.Tensor, data_batch: int) -> torch.Tensor:
    """Shape a switched network's output for the data plate: ``(P * B, ...)`` -> ``(P, B, ...)``
    (Pyro's vectorised particles sit left of the plate); unchanged when P = 1."""
    if t.shape[0] == data_batch:
        return t
    if t.shape[0] % data_batch:
        raise ValueError(f"{t.shape[0]} rows are not particles x the data batch {data_batch}")
    return t.reshape(-1, data_batch, *t.shape[1:])


class ScaleSites(Messenger):
    """Multiply the log density of the named sample sites by ``scale``."""

    def __init__(self, names: Sequence[str], scale: float):
        super().__init__()
        self.names, self.scale = set(names), scale

    def _pyro_sample(self, msg):
        if msg["name"] in self.names:
            msg["scale"] = self.scale * msg["scale"]


class ScaleObserved(Messenger):
    """Multiply the log likelihood of every observed sample site by ``scale``."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def _pyro_sample(self, msg):
        if msg["is_observed"]:
            msg["scale"] = self.scale * msg["scale"]


class UserModel:
    """A user's Pyro model with its switch sites ``sizes`` ``{site: K}`` found from a trace on
    ``(x, y)`` (one batch). ``model`` has the signature :class:`.SwitchedNetwork`'s model has."""

    temperature = False

    def __init__(self, model: Callable, x: torch.Tensor, y: torch.Tensor, num_data: int):
        self.user_model = model
        try:
            declared = inspect.signature(model).parameters
        except (TypeError, ValueError):
            declared = {}
        self.passes = [name for name in ("idx", "num_data") if name in declared]
        with torch.no_grad():
            trace = poutine.trace(self._call).get_trace(x, y, torch.arange(len(y), device=y.device), num_data)
        self.sizes: dict[str, int] = {}
        others, observed = [], []
        for name, site in trace.nodes.items():
            if site["type"] != "sample" or site_is_subsample(site):
                continue
            if site["is_observed"]:
                observed.append(name)
            elif isinstance(site["fn"], dist.Dirichlet) and site["fn"].batch_shape == () and site["value"].dim() == 1:
                self.sizes[name] = site["value"].shape[0]
            else:
                others.append(name)
        if others:
            raise ValueError(f"latent sites {others} are not Dirichlet switches with one (K,) vector each; "
                             "fit_switches fits Dirichlet switches only. Make them observed, fixed (pyro.param), "
                             "or fit the model with your own guide and pyro.infer.SVI")
        if not self.sizes:
            raise ValueError("the model has no Dirichlet switch sites; call pyro_dirichlet.dirichlet_switch(name, "
                             "activation) where a layer's channels should be switched")
        if not observed:
            raise ValueError("the model observes nothing: sample the labels with obs=y inside a data plate")
        self.sites = list(self.sizes)
        self.name = getattr(model, "__qualname__", type(model).__qualname__)

    def _call(self, x, y, idx, num_data):
        kwargs = {"idx": idx, "num_data": num_data}
        kwargs = {k: v for k, v in kwargs.items() if k in self.passes}
        if "num_data" in self.passes:
            return self.user_model(x, y, **kwargs)
        with ScaleObserved(num_data / len(y)):
            return self.user_model(x, y, **kwargs)

    def model(self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor | None = None, num_data: int | None = None,
              sites: Sequence[str] | None = None, beta: float = 1.0):
        """The user's model with ``sites`` fitted (prior scaled by ``beta``) and the other
        switches fixed, hidden and unscaled."""
        sites = list(sites or self.sites)
        fixed = {name: torch.full((k,), 1.0 / k, dtype=x.dtype if x.is_floating_point() else torch.float32,
                                  device=x.device)
                 for name, k in self.sizes.items() if name not in sites}
        idx = torch.arange(len(y), device=y.device) if idx is None else idx
        with (poutine.block(hide=list(fixed)), poutine.condition(data=fixed), ScaleSites(sites, beta),
              Unswitched(fixed)):
            return self._call(x, y, idx, num_data or len(y))


def switch_layers(model: Callable, net: nn.Module, *args, example_inputs=None, **kwargs) -> dict[str, str]:
    """``{site: layer}``: the conv/linear layer (its channel group's name, :mod:`.groups`) of
    ``net`` whose channels each :func:`.switches.dirichlet_switch` of ``model(*args, **kwargs)``
    scales, found by running the model once. The switch must be applied to the output of a
    conv/linear layer or of a BatchNorm of its group (not after an activation)."""
    groups = channel_groups(net, default_example(net, example_inputs))
    group_of = {module: g.name for g in groups for module in (*g.members, *g.points)}
    produced: dict[int, tuple[str, torch.Tensor]] = {}  # id(output) -> (module name, output kept alive)
    named = dict(net.named_modules())
    with hooks(named[name].register_forward_hook(
            lambda m, i, out, name=name: produced.__setitem__(id(out), (name, out))) for name in group_of), \
            RecordSwitches() as recorder, torch.no_grad():
        model(*args, **kwargs)
    layers = {}
    for site, x in recorder.calls:
        module, output = produced.get(id(x), (None, None))
        if output is not x:
            raise ValueError(f"switch {site!r} scales a tensor that no conv/linear/BatchNorm layer of the network "
                             "returns; call dirichlet_switch on a layer's output (before the activation)")
        layers[site] = group_of[module]
    return layers
