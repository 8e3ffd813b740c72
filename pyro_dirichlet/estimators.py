"""The two estimators of the switch ELBO, each one ELBO object (:func:`switch_elbo`).

The guide is always ``q(s_l) = Dir(phi_l)`` (the library's :class:`.SwitchGuide`, or a guide of
your own with ``Dirichlet`` switch sites), valid under any of Pyro's ELBOs. How the guide's
Dirichlet is used belongs to the ELBO, so a guide and an objective cannot be mismatched:

- ``"mc"``: ``Trace_ELBO(num_particles=S, vectorize_particles=True)``: S reparameterised draws
  (implicit Gamma gradients), run as one batched forward pass; the KL enters as the sampled
  ``log p(s) - log q(s)``.
- ``"mean"``: :class:`MeanSwitchELBO`, ``TraceMeanField_ELBO`` with each ``Dirichlet`` site of the
  guide replaced by its mean (:class:`MeanDirichlet`): ``log p(y | x, E_q[s]) - KL(Dir(phi) ||
  prior)``, the KL analytic. Deterministic.
"""
from __future__ import annotations

import pyro.distributions as dist
import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from pyro.poutine.messenger import Messenger

__all__ = ["ESTIMATORS", "MeanDirichlet", "SwitchMeans", "MeanSwitchELBO", "switch_elbo"]

ESTIMATORS = ("mean", "mc")


class MeanDirichlet(dist.Dirichlet):
    """``Dir(phi)`` whose ``rsample`` returns its mean ``phi / sum(phi)``.

    Being a Dirichlet, ``kl_divergence(MeanDirichlet(phi), Dirichlet(alpha))`` is torch's
    analytic Dirichlet KL, which ``TraceMeanField_ELBO`` uses.
    """

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        return self.mean.expand(self._extended_shape(sample_shape))


class SwitchMeans(Messenger):
    """Replace every latent ``Dirichlet`` sample site by its :class:`MeanDirichlet`."""

    def _pyro_sample(self, msg):
        fn = msg["fn"]
        if not msg["is_observed"] and isinstance(fn, dist.Dirichlet) and not isinstance(fn, MeanDirichlet):
            msg["fn"] = MeanDirichlet(fn.concentration)


class MeanSwitchELBO(TraceMeanField_ELBO):
    """``TraceMeanField_ELBO`` run on the guide's switch means (the "mean" estimator)."""

    def _get_trace(self, model, guide, args, kwargs):
        return super()._get_trace(model, SwitchMeans()(guide), args, kwargs)


def switch_elbo(estimator: str = "mean", num_samples: int = 16):
    """The ELBO of an estimator: ``"mean"`` (:class:`MeanSwitchELBO`) or ``"mc"`` with
    ``num_samples`` vectorised particles (module docstring). Both allow one data plate."""
    if estimator == "mc":
        return Trace_ELBO(num_particles=num_samples, vectorize_particles=True, max_plate_nesting=1)
    if estimator == "mean":
        return MeanSwitchELBO(num_particles=1, max_plate_nesting=1)
    raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
