"""Dirichlet importance switches: the Pyro sample sites, the model and the two guides.

For a site with K channels (a layer's output channels or units, or a Linear layer's input
features ``"fc1:in"``, see :mod:`.sites`) the switch is ``s ~ Dir(alpha0 * 1_K)`` and
channel k is multiplied by ``switch_factor(s)_k`` (``s_k`` under the ``s`` form, ``K s_k``
under the paper's; the network's kind picks the default, :mod:`.form_rule`); a site left out is
not scaled at all.

Particles: a switch value ``s`` of shape ``(..., K)`` holds ``P = s.numel() / K`` draws
(Pyro's vectorised particles give shape ``(S, 1, K)``). The first switched layer turns its
``(B, K, ...)`` output into ``(P * B, K, ...)`` (particle-major), so every later layer runs
once on the folded batch; later switched layers reshape to ``(P, B, K, ...)`` to scale.
Where a tensor from before the first switch meets the folded batch later (a residual
shortcut), the input itself is repeated P times instead (found on the first forward pass,
checked against one forward pass per particle).

Many particles: when a switched layer's ``(B, K)`` output reaches a Linear layer with J < B
outputs directly or through a ReLU (``relu(K s * h) = K s * relu(h)`` as ``s > 0``), that
Linear scales its weight per particle instead (``(P, J, K)``, see :func:`scaled_linear`),
so the ``(P, B, K)`` scaled activations are never formed.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import pyro
import pyro.distributions as dist
import torch
import torch.nn as nn
from pyro import poutine

from .frozen import frozen, hooks
from .groups import channel_groups, default_example, resolve_layers
from .heads import head_layout, is_head_site
from .sites import channel_dim, check_sites, is_input_site, layer_module, site_layer, site_width
from .form_rule import resolve_switch
from .switch_config import SwitchConfig
from .likelihoods import observed, resolve
from .switch_ops import (BN_EPS, DEFAULT, TEMPERATURE_SITE, RecordSwitches, Unswitched, _switch,  # noqa: F401
                         dirichlet_switch, scale_channels, scaled_linear, switch_factor)


__all__ = ["SwitchedNetwork", "SwitchGuide"]

class SwitchedNetwork:
    """A frozen trained network with Dirichlet switches on named sites, as a Pyro model.

    ``sites`` names the sites: a conv/linear layer's outputs (``"conv2"``), a Linear
    layer's input features (``"fc1:in"``) or an attention module's heads
    (``"blocks.0.attn:heads"``: the switch scales each head's output at the output projection's
    input, :mod:`.heads`), see :mod:`.sites`; a Linear layer's features are its last dim, so
    token layers ``(B, N, C)`` are switched as they are. ``net`` runs in eval mode
    (BatchNorm statistics and dropout frozen) with ``requires_grad=False`` on its weights
    during each forward pass only (:func:`.frozen.frozen`): afterwards it is as it was found.
    An output site switches its layer's channel group (:mod:`.groups`; naming several members
    of one group names it once, under the group's name): the switch multiplies the output of
    each of the group's BatchNorms and of each member that does not feed straight into one,
    so a zero switch removes the channels exactly; an input switch multiplies the layer's
    input. ``example_inputs`` (one batch; default zeros of ``net.input_shape``) trace the
    network once; the output layer is refused unless ``allow_output``. Hooks are attached only
    during a forward pass. ``switch``: the prior and how a switch value scales its channel
    (:class:`.SwitchConfig`; with ``temperature`` the logits are divided by ``T = exp(t)``,
    fitted beside the switches with prior ``t ~ N(0, 1)`` and a point estimate in the guide,
    so that recalibrating the network's confidence cannot pass for channel importance).
    ``likelihood``: how the outputs explain the targets (:mod:`.likelihoods`): ``"categorical"``
    (logits ``(B, C)``), ``"bernoulli"`` (one logit ``(B, 1)`` with 0/1 labels, or dense logits
    with targets of their shape), :class:`.Gaussian`, or a callable outputs -> distribution. ``fold_into_linear``: scale a consuming Linear's weights instead
    of the activations (module docstring); ``None`` (default) where it has fewer outputs than
    the batch has rows.
    """

    def __init__(self, net: nn.Module, sites: Sequence[str], switch: SwitchConfig = DEFAULT, *,
                 likelihood: str | Callable = "categorical", fold_into_linear: bool | None = None, example_inputs=None,
                 allow_output: bool = False):
        check_sites(net, sites)
        if not isinstance(switch, SwitchConfig):
            raise TypeError(f"switch must be a SwitchConfig (e.g. SwitchConfig(alpha0=0.5, form='s')), got {switch!r}")
        resolve(likelihood)  # a registered name or a callable, else a clear error
        if example_inputs is not None and not isinstance(example_inputs, torch.Tensor):
            raise ValueError(
                f"example_inputs is a {type(example_inputs).__name__}: a switched network is fitted on batches of one "
                "tensor. Wrap a network whose forward takes other arguments, e.g. a module whose forward(x) "
                "returns net({'image': x}), and pass one batch tensor")
        self.net = net
        groups = {g.name: g for g in channel_groups(net, default_example(net, example_inputs))}
        named = [site if is_input_site(site) or is_head_site(site)
                 else resolve_layers(list(groups.values()), [site], allow_output)[0] for site in sites]
        self.sites = list(dict.fromkeys(named))  # naming several members of one group names the group once
        self.sizes = {name: groups[name].size if name in groups else site_width(net, name) for name in self.sites}
        self.groups = {name: groups[name] for name in self.sites if name in groups}
        self.switch = resolve_switch(switch, net, example_inputs)  # "auto": the form of the network's kind
        self.temperature = switch.temperature
        self.likelihood = likelihood
        self.fold_into_linear = fold_into_linear
        self._switch_points = {  # site -> modules whose outputs (an input or head site: whose input) it scales
            name: [net.get_submodule(p) for p in self.groups[name].points] if name in self.groups
            else [net.get_submodule(head_layout(net, name).out_proj)] if is_head_site(name)
            else [layer_module(net, site_layer(name))] for name in self.sites}
        self._consumers: dict[str, nn.Linear] = {}
        self._not_batch_led: dict[str, list[int]] = {}
        self._fold_at_input = False
        self._traced = False

    def _trace(self, x: torch.Tensor) -> None:
        """Find each Linear that consumes a single-point switch's 2-D output directly or
        through a ReLU, and keep those consumers only if scaling their weights gives the same
        logits; decide whether particles must be folded at the input (module docstring)."""
        single = {points[0]: name for name, points in self._switch_points.items()
                  if not is_input_site(name) and not is_head_site(name) and len(points) == 1}
        outputs: dict[str, torch.Tensor] = {}
        consumers: dict[str, nn.Linear] = {}

        def record(module, inputs, output):
            u = inputs[0] if inputs else None
            if isinstance(module, nn.Linear):
                for name, o in outputs.items():
                    if o.dim() == 2 and (u is o or torch.equal(u, torch.relu(o))):
                        consumers[name] = module
            if module in single:
                outputs[single[module]] = output

        leading: dict[str, set[int]] = {}  # site: the leading dims of its activations on one example

        def lead(name, before):
            def hook(module, inputs, output=None):
                leading.setdefault(name, set()).add((inputs[0] if before else output).shape[0])
            return hook

        handles = [m.register_forward_hook(record) for m in self.net.modules()]
        for name, points in self._switch_points.items():
            before = is_input_site(name) or is_head_site(name)
            handles += [p.register_forward_pre_hook(lead(name, True)) if before else
                        p.register_forward_hook(lead(name, False)) for p in points]
        with hooks(handles), frozen(self.net), torch.no_grad():
            self.net(x[:1])
        self._not_batch_led = {name: sorted(dims) for name, dims in leading.items() if dims != {1}}
        self._traced = True
        if self._not_batch_led:  # one switch value only (forward refuses particles): nothing to fold
            return
        probe = x[:1].expand(2, *x.shape[1:])  # two equal rows: a batch mismatch cannot broadcast away
        s = {}  # two distinct non-uniform particles per layer (no random numbers drawn)
        for name, k in self.sizes.items():
            ramp = torch.linspace(0.5, 1.5, k, dtype=x.dtype, device=x.device)
            s[name] = torch.stack([ramp, ramp.flip(0)]) / ramp.sum()
        with torch.no_grad():
            each = torch.cat([self.forward(probe, {n: v[p] for n, v in s.items()}) for p in range(2)])
            self._fold_at_input = not self._agrees(each, lambda: self.forward(probe, s))
            self._consumers = consumers if self.switch.form != "bn" else {}
            if self._consumers and not self._agrees(each, lambda: self.forward(probe, s, fold_into_linear=True)):
                self._consumers = {}

    @staticmethod
    def _agrees(reference: torch.Tensor, compute) -> bool:
        """Whether ``compute()`` runs (a batch mismatch raises) and matches ``reference``."""
        try:
            value = compute()
        except RuntimeError:
            return False
        tolerance = 1e-5 * reference.abs().max().item()
        return value.shape == reference.shape and torch.allclose(value, reference, rtol=1e-4, atol=tolerance)

    def switch_points(self) -> dict[str, list[nn.Module]]:
        """``{site: modules whose outputs the switch scales}`` (an input site: its layer, whose
        input it scales; a head site: its output projection, whose input it scales by heads)."""
        return {name: list(points) for name, points in self._switch_points.items()}

    def scaler(self, name: str, s: torch.Tensor, data_batch: int | None, point: nn.Module):
        """``f(x)``: the activation ``x`` at ``point`` (its output; its input for an input or head
        site) with site ``name``'s channels scaled by switch values ``s``."""
        how = (self.switch.form, self.switch.steepness, self.switch.share)  # switch_factor arguments
        if is_head_site(name):
            size = self.sizes[name]
            return lambda x: scale_channels(x.unflatten(-1, (size, -1)), s, data_batch, *how, -2).flatten(-2)
        dim = -1 if is_input_site(name) else channel_dim(point)
        return lambda x: scale_channels(x, s, data_batch, *how, dim)

    def forward(self, x: torch.Tensor, switches: dict[str, torch.Tensor], fold_into_linear: bool | None = None
                ) -> torch.Tensor:
        """Logits ``(P * B, C)`` of the network on x ``(B, ...)`` with the given switch values
        (``fold_into_linear`` overrides the network's setting)."""
        if not self._traced:
            self._trace(x)
        particles = max(v.numel() // v.shape[-1] for v in switches.values()) if switches else 1
        if particles > 1 and self._not_batch_led:
            raise ValueError(f"on one example, the activations at {self._not_batch_led} (site: leading dims) do not "
                             "lead with the batch: the network folds other dims into it (e.g. MobileViT's unfolded "
                             "patches), so a switch cannot tell its particles apart there. Fit these sites with the "
                             "mean estimator (one switch value), or switch other layers")
        B = x.shape[0]
        if fold_into_linear is None:
            fold_into_linear = self.fold_into_linear
        handles = []
        how = (self.switch.form, self.switch.steepness, self.switch.share)  # switch_factor arguments
        scale_in_point = dict(switches)
        for name, s in switches.items():  # consumer hooks first: they run before a switch on the same module
            consumer = self._consumers.get(name)
            use = consumer is not None and (consumer.out_features < B if fold_into_linear is None else fold_into_linear)
            if use:
                del scale_in_point[name]
                handles.append(consumer.register_forward_hook(
                    lambda module, inputs, output, s=s: scaled_linear(module, inputs[0], s, B, *how)))
        for name, s in scale_in_point.items():
            for point in self._switch_points[name]:
                scale = self.scaler(name, s, B, point)
                if is_input_site(name) or is_head_site(name):
                    handles.append(point.register_forward_pre_hook(
                        lambda module, inputs, scale=scale: (scale(inputs[0]), *inputs[1:])))
                else:
                    handles.append(point.register_forward_hook(lambda module, inputs, output, scale=scale: scale(output)))
        if self._fold_at_input and particles > 1:
            x = x.repeat(particles, *([1] * (x.dim() - 1)))  # (P * B, ...), particle-major
        with hooks(handles), frozen(self.net):
            return self.net(x)

    def model(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        idx: torch.Tensor | None = None,
        num_data: int | None = None,
        sites: Sequence[str] | None = None,
        beta: float = 1.0,
    ) -> torch.Tensor:
        """Pyro model: switch ``sites`` (default all; prior scaled by ``beta``), then ``y_i ~
        likelihood(outputs_i)`` (targets ``(B, ...)``) in a plate of size ``num_data`` subsampled to the
        batch (likelihood scale N/B)."""
        B = x.shape[0]
        switches = {}
        with poutine.scale(scale=beta):
            for name in sites or self.sites:
                prior = torch.full((self.sizes[name],), self.switch.alpha0, dtype=x.dtype, device=x.device)
                switches[name] = pyro.sample(name, dist.Dirichlet(prior))
        outputs = self.forward(x, switches)
        outputs = outputs.to(torch.promote_types(outputs.dtype, torch.float32))  # bf16 under autocast -> fp32
        if outputs.shape[0] != B:
            outputs = outputs.reshape(-1, B, *outputs.shape[1:])  # (P, B, ...)
        if self.temperature:
            t = pyro.sample(TEMPERATURE_SITE, dist.Normal(torch.zeros((), device=x.device), 1.0))
            factor = t.exp()
            outputs = outputs / (factor.reshape(-1, *[1] * (outputs.dim() - 1)) if outputs.shape[0] != B else factor)
        y_dist, y = observed(self.likelihood, outputs, y, B)
        subsample = idx if idx is not None else torch.arange(B, device=x.device)
        with pyro.plate("data", num_data or B, subsample=subsample):
            return pyro.sample("y", y_dist, obs=y)


class SwitchGuide(nn.Module):
    """Variational posterior ``q(s_l) = Dir(phi_l)`` for each switch site ``{name: K_l}``.

    ``phi_l = exp(log_phi_l)`` (positive by construction), initialised to
    ``init_concentration * 1_K``: the uniform mean, so fitting starts from the trained
    network's function. The estimator is the ELBO's (:func:`.estimators.switch_elbo`): a
    ``Trace_ELBO`` draws from ``Dir(phi)``, :class:`.MeanSwitchELBO` uses its mean. It ignores
    the model's arguments; ``sites`` and ``beta`` (the KL weight) are keywords.
    ``temperature``: a point estimate (``Delta``) of the model's log logit temperature, trained in
    every stage.
    """

    def __init__(self, sizes: dict[str, int], init_concentration: float = 10.0, temperature: bool = False):
        super().__init__()
        if not isinstance(init_concentration, (int, float)) or not init_concentration > 0:
            raise ValueError(f"init_concentration must be a positive number, got {init_concentration!r} "
                             "(the estimator is chosen by the ELBO: pyro_dirichlet.switch_elbo)")
        self.names = list(sizes)
        self.log_phi = nn.ParameterList(
            [nn.Parameter(torch.full((k,), math.log(init_concentration))) for k in sizes.values()]
        )
        self.log_temperature = nn.Parameter(torch.zeros(())) if temperature else None
        self.train(False)  # nothing train-specific; tells pyro.module that frozen layers are on purpose

    def phi(self, name: str) -> torch.Tensor:
        return self.log_phi[self.names.index(name)].exp()

    def means(self, sites: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Posterior means ``E_q[s_l] = phi_l / sum_k phi_lk`` ``{site: (K_l,)}`` (detached), of
        ``sites`` or every site."""
        means = {}
        for name in sites or self.names:
            phi = self.phi(name).detach()
            means[name] = phi / phi.sum()
        return means

    def train_only(self, sites: Sequence[str]) -> None:
        """Make only these sites' ``log_phi`` trainable (the others are not registered with Pyro)."""
        for name, p in zip(self.names, self.log_phi):
            p.requires_grad_(name in sites)

    def forward(self, *model_args, sites: Sequence[str] | None = None, beta: float = 1.0, **model_kwargs):
        pyro.module("switch_guide", self)
        with poutine.scale(scale=beta):
            for name in sites or self.names:
                pyro.sample(name, dist.Dirichlet(self.phi(name)))
        if self.log_temperature is not None:  # after the switches, in the model's order
            pyro.sample(TEMPERATURE_SITE, dist.Delta(self.log_temperature))
