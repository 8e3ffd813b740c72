"""The two objectives against hand-written references."""
import math

import pytest
import torch
import torch.nn.functional as F
from pyro.infer import Trace_ELBO

from pyro_dirichlet import SwitchConfig, SwitchedNetwork, SwitchGuide
from pyro_dirichlet.estimators import MeanSwitchELBO
from pyro_dirichlet.models import MLP


def kl_dirichlet_by_hand(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """KL(Dir(a) || Dir(b)) from the closed form."""
    a0, b0 = a.sum(), b.sum()
    return (torch.lgamma(a0) - torch.lgamma(a).sum() - torch.lgamma(b0) + torch.lgamma(b).sum()
            + ((a - b) * (torch.digamma(a) - torch.digamma(a0))).sum())


@pytest.fixture
def problem():
    torch.manual_seed(0)
    net = MLP(in_features=6, widths=(5, 4), num_classes=3).double().eval()
    switched = SwitchedNetwork(net, net.prunable_layers, SwitchConfig(alpha0=0.6))
    guide = SwitchGuide(switched.sizes).double()
    with torch.no_grad():
        for p in guide.log_phi:
            p.uniform_(-0.5, 1.5)  # non-uniform phi: the mean switch changes the function
    N, B = 40, 8
    x, y = torch.randn(B, 6, dtype=torch.float64), torch.randint(0, 3, (B,))
    idx = torch.arange(10, 10 + B)
    return switched, guide, x, y, idx, N


def log_lik(switched, x, y, switches):
    logits = switched.forward(x, switches)
    return F.log_softmax(logits.reshape(-1, x.shape[0], logits.shape[-1]), -1).gather(
        -1, y.expand(logits.shape[0] // x.shape[0], -1).unsqueeze(-1)).squeeze(-1).sum(-1)


def test_mean_objective_is_scaled_log_likelihood_at_mean_minus_kl(problem):
    switched, guide, x, y, idx, N = problem
    loss = MeanSwitchELBO(max_plate_nesting=1).differentiable_loss(
        switched.model, guide, x, y, idx=idx, num_data=N)
    means = {name: guide.phi(name) / guide.phi(name).sum() for name in guide.names}
    kl = sum(kl_dirichlet_by_hand(guide.phi(n), torch.full_like(guide.phi(n), 0.6)) for n in guide.names)
    elbo = N / x.shape[0] * log_lik(switched, x, y, means).squeeze() - kl
    assert loss.item() == pytest.approx(-elbo.item(), rel=1e-10)
    # beta scales only the KL
    half = MeanSwitchELBO(max_plate_nesting=1).differentiable_loss(
        switched.model, guide, x, y, idx=idx, num_data=N, beta=0.5)
    assert half.item() == pytest.approx(-(elbo + 0.5 * kl).item(), rel=1e-10)


def test_mc_objective_matches_plain_torch_monte_carlo(problem):
    switched, guide, x, y, idx, N = problem
    S = 4000
    torch.manual_seed(1)
    pyro_estimate = -Trace_ELBO(num_particles=S, vectorize_particles=True, max_plate_nesting=1).loss(
        switched.model, guide, x, y, idx=idx, num_data=N)
    # plain torch: f(s) = N/B log p(y|x,s) + log p(s) - log q(s), s ~ Dir(phi), independent draws
    torch.manual_seed(2)
    f = torch.zeros(S, dtype=torch.float64)
    draws = {}
    for name in guide.names:
        phi = guide.phi(name).detach()
        q = torch.distributions.Dirichlet(phi)
        s = q.sample((S,))
        draws[name] = s
        f += torch.distributions.Dirichlet(torch.full_like(phi, 0.6)).log_prob(s) - q.log_prob(s)
    with torch.no_grad():
        f += N / x.shape[0] * log_lik(switched, x, y, draws)
    se = f.std() / math.sqrt(S)
    # both estimates have standard error `se`; their difference has sqrt(2) * se
    assert abs(pyro_estimate - f.mean().item()) < 4 * math.sqrt(2) * se.item()
    # and the test can tell the objectives apart: the mean-switch value differs by many SEs
    means = {name: guide.phi(name) / guide.phi(name).sum() for name in guide.names}
    with torch.no_grad():
        at_mean = N / x.shape[0] * log_lik(switched, x, y, means).item()
    assert abs(at_mean - f.mean().item()) > 4 * se.item()


def test_mc_gradients_flow_to_phi(problem):
    switched, guide, x, y, idx, N = problem
    loss = Trace_ELBO(num_particles=8, vectorize_particles=True, max_plate_nesting=1).differentiable_loss(
        switched.model, guide, x, y, idx=idx, num_data=N)
    loss.backward()
    for p in guide.log_phi:
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


def test_the_estimator_belongs_to_the_elbo(problem):
    """One guide, Dir(phi), under either ELBO; the mean estimator also for a hand-written guide."""
    import pyro
    import pyro.distributions as dist

    switched, guide, x, y, idx, N = problem
    with pytest.raises(ValueError, match="chosen by the ELBO"):
        SwitchGuide(switched.sizes, "mean")  # the old way to pick an estimator is refused, naming the new one

    def hand_written(*args, **kwargs):
        for name in guide.names:
            pyro.sample(name, dist.Dirichlet(guide.phi(name)))

    mean_loss = MeanSwitchELBO(max_plate_nesting=1).loss
    assert mean_loss(switched.model, hand_written, x, y, idx=idx, num_data=N) == pytest.approx(
        mean_loss(switched.model, guide, x, y, idx=idx, num_data=N), rel=1e-12)
    torch.manual_seed(0)  # the same guide under Trace_ELBO is the Monte-Carlo objective: random, not the mean's
    draws = {Trace_ELBO(max_plate_nesting=1).loss(switched.model, guide, x, y, idx=idx, num_data=N) for _ in range(3)}
    assert len(draws) == 3
