"""Channel-importance criteria: one score per channel of each switch site (higher = more
important), consumed by the same ``counts_for_budget`` / ``keep_indices`` / ``trim`` as the
Dirichlet posterior means. Sites are output channels (``"conv2"``, a channel group: :mod:`.groups`)
or a Linear layer's input features (``"fc1:in"``, :mod:`.sites`).

One interface (:class:`Criterion`, after Torch-Pruning's ``Importance``): a callable
``criterion(net, sites, data=None, seed=0) -> ChannelScores`` (``{site: (K,)}``), which also
carries how its scores compare across layers (``normalisation``, read by ``counts_for_budget``)
and the network they rank (``network``: group lasso's retrained copy). ``CRITERIA`` registers one
of each: ``l1``, ``l2``, ``taylor``, ``fisher``, ``group-lasso``, ``data-free``, ``random``,
``dirichlet``, ``tp-magnitude``, ``tp-taylor`` and ``tp-hessian``.

- ``l1``, ``l2``: norm of the channel's weights over every member of its channel group (conv:
  the output filter ``W[k]``; linear: the unit's incoming weights ``W[k, :]``; input feature j:
  the column ``W[:, j]``).
- ``taylor`` (Molchanov et al. 2017): ``|mean_space(a * dL/da)|`` per example, averaged over
  examples; a = the layer's output after its BatchNorm if any (the switch point), or the
  layer's input for an input site; L the summed cross-entropy so ``dL/da_n`` is example
  n's own gradient.
- ``fisher`` (Theis et al. 2018): ``0.5 * (sum_space a * dL/da)^2`` per example, averaged.
- ``group-lasso`` (Wen et al. 2016): see :func:`group_lasso_retrain`; scores are the
  retrained channels' weight L2 norms, and the retrained network is the one pruned.
- ``data-free`` (Srinivas & Babu 2015): unit j's saliency is
  ``min_{i != j} <a_j^2> ||W_i - W_j||^2`` (W: incoming weights, flattened filters for conv;
  ``<a_j^2>``: mean squared outgoing weight into the next conv/linear layer in execution
  order, so sequential networks only). A unit close to another one is redundant. Input
  feature j: ``<a_j^2>`` from its column ``W[:, j]``, times the distance term of the
  producer channel it comes from (1 when the features are the network's input).
- ``random``: uniform scores from a seeded generator, the floor.
- ``dirichlet``: the switch posterior means ``E_q[s_l]`` of a fit (:func:`.fit.fit_switches`).
- ``tp-magnitude``, ``tp-taylor``, ``tp-hessian``: Torch-Pruning's ``GroupMagnitudeImportance``,
  ``GroupTaylorImportance`` (``|w * dL/dw|``) and ``GroupHessianImportance`` over each site's whole
  dependency group (the DepGraph baselines, :mod:`.tp_criteria`).

Head sites (``"blocks.0.attn:heads"``, :mod:`.heads`) have one score per head (per key/value
group): the activation criteria read the heads' outputs before the output projection.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import ClassVar

import torch
import torch.nn as nn

from .fit import FitConfig, fit_switches
from .frozen import frozen, hooks
from .groups import channel_groups, default_example
from .heads import head_layout, is_head_site
from .likelihoods import log_prob, nll
from .scores import ChannelScores, Criterion, example_batch, needs
from .pruning import input_links
from .sites import LAYERS, channel_dim, is_input_site, layer_module, site_layer
from .switch_config import SwitchConfig
from .switches import SwitchedNetwork
from .tp_criteria import TorchPruningHessian, TorchPruningMagnitude, TorchPruningTaylor
from .training import TrainConfig, train


def site_members(net: nn.Module, sites: Sequence[str], example_inputs=None) -> dict[str, tuple[str, ...]]:
    """``{site: layers whose output channels are the site's}``: an output site's channel group
    members (:mod:`.groups`), an input site's own layer."""
    members = {site: (site_layer(site),) for site in sites}
    outputs = [site for site in sites if not is_input_site(site)]
    if outputs:
        by_layer = {m: g.members for g in channel_groups(net, default_example(net, example_inputs), check=False)
                    for m in g.members}
        members.update({site: by_layer.get(site, (site,)) for site in outputs})
    return members


def _channel_weights(net: nn.Module, site: str, members: Sequence[str] = ()) -> torch.Tensor:
    """``(K, fan)``: each channel's weights, flattened and concatenated over ``members`` (default:
    the site's layer); an input feature's: its weight column."""
    if is_input_site(site):
        return layer_module(net, site_layer(site)).weight.T
    if is_head_site(site):  # a head's rows of q, k, v (and a gate) and its columns of the output projection
        layout = head_layout(net, site)
        K = layout.size
        rows = [net.get_submodule(n).weight.reshape(sections, K, -1).transpose(0, 1).reshape(K, -1)
                for n, sections in layout.rows]
        proj = net.get_submodule(layout.out_proj).weight
        return torch.cat([*rows, proj.reshape(proj.shape[0], K, -1).transpose(0, 1).reshape(K, -1)], 1)
    return torch.cat([layer_module(net, m).weight.flatten(1) for m in members or (site,)], 1)


def norm_scores(net: nn.Module, layers: Sequence[str], p: int, example_inputs=None) -> dict[str, torch.Tensor]:
    """``||W_k||_p`` of each channel's weights over its group's members (:func:`site_members`)."""
    members = site_members(net, layers, example_inputs)
    return {name: _channel_weights(net, name, members[name]).detach().norm(p=p, dim=1) for name in layers}


def random_scores(net: nn.Module, layers: Sequence[str], seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {name: torch.rand(_channel_weights(net, name).shape[0], generator=gen) for name in layers}


def gradient_scores(net: nn.Module, layers: Sequence[str], data, kind: str, num_batches: int = 10,
                    batch_size: int = 100, seed: int = 0, likelihood="categorical") -> dict[str, torch.Tensor]:
    """``taylor`` or ``fisher`` scores from ``num_batches`` shuffled training batches (``net`` run
    in eval mode with frozen weights, as for :class:`SwitchedNetwork`), L the summed negative
    log-likelihood (:mod:`.likelihoods`; categorical: the cross-entropy). A channel group's
    ``a * dL/da`` is summed over every point where its switch acts (:mod:`.groups`)."""
    if kind not in ("taylor", "fisher"):
        raise ValueError(f"kind must be 'taylor' or 'fisher', got {kind!r}")
    gen = torch.Generator().manual_seed(seed)
    batches = data.batches(batch_size, shuffle=True, generator=gen)
    switched = SwitchedNetwork(net, layers, example_inputs=next(iter(data.batches(1)))[0])
    sites = switched.switch_points()
    totals = {name: 0.0 for name in sites}
    seen = 0
    with frozen(net):
        for _, (x, y, _) in zip(range(num_batches), batches):
            acts: list[tuple[str, torch.Tensor]] = []  # (site, activation at one of its points)
            with hooks(m.register_forward_pre_hook(lambda mod, i, name=name: acts.append((name, mod, i[0])))
                       if is_input_site(name) or is_head_site(name) else
                       m.register_forward_hook(lambda mod, i, out, name=name: acts.append((name, mod, out)))
                       for name, points in sites.items() for m in points):
                loss = -log_prob(likelihood, net(x.requires_grad_(True)), y).sum()
            grads = torch.autograd.grad(loss, [a for _, _, a in acts])
            per_site = {name: 0.0 for name in sites}
            for (name, module, a), g in zip(acts, grads):
                ag = _channels_first(a.detach() * g, name, module, switched.sizes[name])  # (B, K, positions)
                summed = ag.sum(-1)
                per_site[name] = per_site[name] + (summed / ag.shape[-1] if kind == "taylor" else summed)
            for name, per_example in per_site.items():
                if kind == "taylor":
                    totals[name] = totals[name] + per_example.abs().sum(0)
                else:
                    totals[name] = totals[name] + 0.5 * per_example.pow(2).sum(0)
            seen += len(y)
    return {name: (t / seen).cpu() for name, t in totals.items()}


def _channels_first(a: torch.Tensor, site: str, point: nn.Module, size: int) -> torch.Tensor:
    """``(B, K, positions)`` view of an activation at a switch point of ``site`` (tokens and
    space are positions; a head site's K heads of w features each: ``(B, K, N * w)``)."""
    if is_head_site(site):
        a = a.unflatten(-1, (size, a.shape[-1] // size)).movedim(-2, 1)
    elif is_input_site(site) or channel_dim(point) == -1:
        a = a.movedim(-1, 1)
    return a.reshape(a.shape[0], size, -1)


def _execution_order(net: nn.Module, x: torch.Tensor) -> list[str]:
    names = {m: n for n, m in net.named_modules() if isinstance(m, LAYERS)}
    order: list[str] = []
    with hooks(m.register_forward_hook(lambda mod, i, o: order.append(names[mod])) for m in names), torch.no_grad():
        net(x)
    return order


def data_free_scores(net: nn.Module, layers: Sequence[str], example_inputs=None) -> dict[str, torch.Tensor]:
    """Srinivas & Babu saliency (module docstring); needs each layer's successor conv/linear."""
    order = _execution_order(net, default_example(net, example_inputs))
    links = input_links(net, layers, example_inputs)
    redundancy = {}  # layer: min_{i != j} ||W_i - W_j||^2 over its output channels, (K,)
    for layer in {site_layer(name) for name in layers} | {producer for producer, _ in links.values() if producer}:
        w_in = _channel_weights(net, layer).detach()
        dist = torch.cdist(w_in, w_in).pow(2)
        dist.fill_diagonal_(float("inf"))
        redundancy[layer] = dist.min(dim=0).values
    scores = {}
    for name in layers:
        if is_input_site(name):
            producer, stride = links[name]
            out_sq = layer_module(net, site_layer(name)).weight.detach().pow(2).mean(dim=0)  # (F,)
            near = redundancy[producer].repeat_interleave(stride) if producer else torch.ones_like(out_sq)
            scores[name] = (out_sq * near).cpu()
            continue
        position = order.index(name)
        if position + 1 == len(order):
            raise ValueError(f"data-free needs a conv/linear layer after {name!r} (its outgoing weights)")
        K = redundancy[name].shape[0]
        w_out = layer_module(net, order[position + 1]).weight.detach()
        if w_out.flatten(1).shape[1] % K:
            raise ValueError(f"{order[position + 1]!r} does not consume {name!r}'s {K} channels; data-free needs a "
                             "sequential network")
        out_sq = w_out.reshape(w_out.shape[0], K, -1).pow(2).mean(dim=(0, 2))  # <a_j^2>, (K,)
        scores[name] = (out_sq * redundancy[name]).cpu()  # min over i != j, for each j
    return scores


def group_norm_penalty(net: nn.Module, layers: Sequence[str], members: Mapping[str, Sequence[str]] | None = None
                       ) -> torch.Tensor:
    """``sum_l sqrt(fan_l) sum_k ||W_lk||_2`` over each site's channel weights (over its
    ``members``, default its layer; groups weighted by the square root of their size)."""
    total = 0.0
    for name in layers:
        w = _channel_weights(net, name, (members or {}).get(name, ()))
        total = total + w.shape[1] ** 0.5 * w.norm(dim=1).sum()
    return total


def group_lasso_retrain(net: nn.Module, layers: Sequence[str], data, cfg: TrainConfig, strength: float,
                        progress: bool = False, example_inputs=None, likelihood="categorical") -> nn.Module:
    """A copy of ``net`` retrained with per-batch loss ``mean NLL + strength * group_norm_penalty``
    (plus ``cfg.weight_decay``; the NLL of ``likelihood``, categorical: the cross-entropy)."""
    retrained = copy.deepcopy(net)
    members = site_members(retrained, layers, example_inputs)
    train(retrained, data, cfg, progress=progress, loss=None if likelihood == "categorical" else nll(likelihood),
          regularizer=lambda model: strength * group_norm_penalty(model, layers, members))
    return retrained


@dataclass(frozen=True)
class Norm:
    """``l1`` / ``l2``: weight norms, each layer's scores divided by their mean for the budget
    (Torch-Pruning's default; Li et al. set per-layer rates by hand)."""
    p: int = 2
    normalisation: ClassVar[str] = "mean"

    def __call__(self, net, sites, data=None, seed=0, likelihood=None):  # likelihood: not read
        return ChannelScores(norm_scores(net, sites, self.p, example_batch(data, net)), self.normalisation, net)


@dataclass(frozen=True)
class Gradient:
    """``taylor`` (each layer L2-normalised for the budget, as Molchanov et al.) or ``fisher``
    (raw, as Theis et al.): :func:`gradient_scores` on ``num_batches`` batches."""
    kind: str = "taylor"
    num_batches: int = 10
    batch_size: int = 100

    @property
    def normalisation(self) -> str:
        return "l2" if self.kind == "taylor" else "none"

    def __call__(self, net, sites, data=None, seed=0, likelihood="categorical"):
        scores = gradient_scores(net, sites, needs(data, self.kind), self.kind, self.num_batches, self.batch_size, seed,
                                 likelihood)
        return ChannelScores(scores, self.normalisation, net)


@dataclass(frozen=True)
class GroupLasso:
    """``group-lasso``: retrain a copy with the group penalty (:func:`group_lasso_retrain`) and
    score its channels' L2 norms, raw for the budget (one threshold, as Wen et al.)."""
    strength: float = 1e-4
    epochs: int = 2
    lr: float = 1e-3
    weight_decay: float = 5e-4
    normalisation: ClassVar[str] = "none"

    def __call__(self, net, sites, data=None, seed=0, likelihood="categorical"):
        cfg = TrainConfig(epochs=self.epochs, lr=self.lr, weight_decay=self.weight_decay, seed=seed)
        example = example_batch(needs(data, "group-lasso"))
        retrained = group_lasso_retrain(net, sites, data, cfg, self.strength, example_inputs=example,
                                        likelihood=likelihood)
        return ChannelScores(norm_scores(retrained, sites, 2, example), self.normalisation, retrained)


@dataclass(frozen=True)
class DataFree:
    """``data-free``: :func:`data_free_scores` (sequential networks), layer mean for the budget."""
    normalisation: ClassVar[str] = "mean"

    def __call__(self, net, sites, data=None, seed=0, likelihood=None):  # likelihood: not read
        shape = getattr(net, "input_shape", None) or tuple(example_batch(needs(data, "data-free")).shape[1:])
        coupled = {site: m for site, m in site_members(net, sites, example_batch(data, net)).items() if len(m) > 1}
        if coupled:
            raise ValueError(f"data-free scores one layer's channels by the next layer's weights; {coupled} couple "
                             "several layers' channels (a residual network): use another criterion there")
        return ChannelScores(data_free_scores(net, sites, shape), self.normalisation, net)


@dataclass(frozen=True)
class Random:
    """``random``: one global random order (raw for the budget), the floor."""
    normalisation: ClassVar[str] = "none"

    def __call__(self, net, sites, data=None, seed=0, likelihood=None):  # likelihood: not read
        return ChannelScores(random_scores(net, sites, seed), self.normalisation, net)


@dataclass(frozen=True)
class Dirichlet:
    """``dirichlet``: switch posterior means ``E_q[s_l] = phi_l / sum(phi_l)`` from
    :func:`.fit.fit_switches` (``fit``'s seed replaced by ``seed``; ``checkpoint``: resume there),
    ``K_l E[s_lk]`` for the budget."""
    fit: FitConfig = field(default_factory=FitConfig)
    switch: SwitchConfig = field(default_factory=SwitchConfig)
    checkpoint: str | None = None
    normalisation: ClassVar[str] = "mean"

    def __call__(self, net, sites, data=None, seed=0, likelihood="categorical"):
        data = needs(data, "dirichlet")
        switched = SwitchedNetwork(net, sites, self.switch, likelihood=likelihood, example_inputs=example_batch(data))
        guide, _ = fit_switches(switched, data, replace(self.fit, seed=seed), self.checkpoint, progress=False)
        return ChannelScores(guide.means(),
                             self.normalisation, net)


CRITERIA: dict[str, Criterion] = {
    "l1": Norm(1), "l2": Norm(2), "taylor": Gradient("taylor"), "fisher": Gradient("fisher"),
    "group-lasso": GroupLasso(), "data-free": DataFree(), "random": Random(), "dirichlet": Dirichlet(),
    "tp-magnitude": TorchPruningMagnitude(), "tp-taylor": TorchPruningTaylor(), "tp-hessian": TorchPruningHessian(),
}
