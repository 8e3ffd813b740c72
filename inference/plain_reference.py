"""The synthetic study's switch fit in plain PyTorch, without Pyro: the yardstick for
Pyro's overhead in the speed benchmark.

Same math, batches and samples as :func:`pyro_dirichlet.fit_switches` on the synthetic MLP
``x -> relu(W1 x + b1) -> (K s) * . -> w2 . + b2`` (K = d_h, one logit), with beta = 1
(no annealing), per minibatch of B out of N, ``phi = exp(log_phi)``, ``q = Dir(phi)``,
``p = Dir(alpha0 1)``:

- ``mc``: ``s_1..S ~ q`` reparameterised (``rsample``: implicit Gamma gradients),
  ``loss = -mean_p[N/B sum_b log Bern(y_b | z_pb) + log p(s_p) - log q(s_p)]`` with
  ``z_pb = (w2 * K s_p) . h_b + b2`` (the weight is scaled, ``(S, K)``, as the library does);
- ``mean``: ``loss = -(N/B sum_b log Bern(y_b | z_b(E_q s)) - KL(q || p))``, KL analytic.

Epochs shuffle with the same seeds as ``fit_switches``, so the same seed gives the same
batches and the same Dirichlet draws.
"""
from __future__ import annotations

import math
import time

import torch
from torch.distributions import Bernoulli, Dirichlet, kl_divergence

from pyro_dirichlet.data import FeatureDataset
from pyro_dirichlet.fit import epoch_seed


def plain_loss(net, log_phi: torch.Tensor, x, y, num_data: int, estimator: str, num_samples: int, alpha0: float):
    """Negative ELBO of one minibatch (a scalar tensor) for the one-hidden-layer MLP ``net``."""
    phi = log_phi.exp()
    q, prior = Dirichlet(phi), Dirichlet(torch.full_like(phi, alpha0))
    K, scale = phi.shape[0], num_data / x.shape[0]
    h = torch.relu(net.hidden0(x))  # (B, K)
    w2, b2 = net.out.weight[0], net.out.bias
    if estimator == "mean":
        z = h @ (w2 * K * q.mean) + b2  # (B,)
        return -(scale * Bernoulli(logits=z).log_prob(y).sum() - kl_divergence(q, prior))
    s = q.rsample((num_samples,))  # (S, K)
    z = h @ (w2 * K * s).T + b2  # (B, S)
    log_lik = Bernoulli(logits=z).log_prob(y[:, None]).sum(0)  # (S,)
    return -(scale * log_lik + prior.log_prob(s) - q.log_prob(s)).mean()


def plain_fit(
    net, data: FeatureDataset, estimator: str, num_samples: int, alpha0: float, epochs: int,
    batch_size: int = 100, lr: float = 0.05, init_concentration: float = 10.0, seed: int = 0,
) -> tuple[torch.Tensor, list[dict]]:
    """Adam on ``log_phi`` for ``epochs`` epochs. Returns ``(phi (K,), history)`` with
    ``history[e] = {"epoch", "loss" (mean per step), "seconds"}``."""
    net = net.eval().requires_grad_(False)
    K = net.hidden0.out_features
    log_phi = torch.full((K,), math.log(init_concentration), device=data.device, requires_grad=True)
    optim = torch.optim.Adam([log_phi], lr=lr)
    history = []
    for epoch in range(epochs):
        seed_e = epoch_seed(seed, 0, epoch)  # as fit_switches (one stage)
        torch.manual_seed(seed_e)
        gen = torch.Generator().manual_seed(seed_e + 1)
        t0, loss_sum, steps = time.perf_counter(), 0.0, 0
        for x, y, _ in data.batches(batch_size, shuffle=True, generator=gen):
            optim.zero_grad()
            loss = plain_loss(net, log_phi, x, y, len(data), estimator, num_samples, alpha0)
            loss.backward()
            optim.step()
            loss_sum += loss.item()
            steps += 1
        history.append({"epoch": epoch + 1, "loss": loss_sum / steps, "seconds": time.perf_counter() - t0})
    return log_phi.detach().exp(), history
