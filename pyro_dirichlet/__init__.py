"""pyro-dirichlet: Bayesian structured pruning with Dirichlet importance switches, in Pyro.

The user's verbs live here (one screen); the rest sits in named submodules, each with ``__all__``:
:mod:`.switch_ops` (``switch_factor``, ``scale_channels``), :mod:`.estimators` (``MeanSwitchELBO``,
``MeanDirichlet``), :mod:`.allocation` (``normalise_scores``, ``feasible_counts``, ``floor_counts``),
:mod:`.allocations`, :mod:`.groups` (``ChannelGroup``), :mod:`.sites` (``InputSelect``),
:mod:`.data` (``DATA_ENV``), :mod:`.simulate` (``SyntheticProblem``), :mod:`.hf`, :mod:`.io`.

- switches: ``SwitchConfig`` (prior and form, the defaults of every entry point),
  ``SwitchedNetwork(net, sites, switch)`` (``.model(x, y, ...)`` is the Pyro model),
  ``SwitchGuide`` (``Dir(phi)`` per site), ``dirichlet_switch`` (primitive for your own model);
  ``resolve_switch`` / ``network_kind`` (the form the library picks for a network).
- fitting: ``FitConfig``, ``fit_switches`` (a ``SwitchedNetwork`` or your own Pyro model),
  ``switch_elbo("mean" | "mc", S)``, ``fit_sequential`` (each site fitted with the earlier ones
  pruned to given counts); your own model: ``unfold_particles``, ``switch_layers``.
- posterior: ``posterior_idata``, ``posterior_means``, ``summarize``, ``save_idata``, ``load_idata``.
- how many channels a site keeps: ``counts_for_budget`` (``MIN_KEEP``, ``PER_MAC``), ``counts_for_mass``,
  ``parse_architecture``, ``format_architecture``, ``keep_indices``; ``ALLOCATIONS`` (per-mac, by-score,
  uniform, likelihood, likelihood-path).
- which channels: ``CRITERIA`` (``name -> criterion(net, sites, data, seed, likelihood) -> ChannelScores``: l1, l2,
  taylor, fisher, group-lasso, data-free, random, dirichlet, tp-magnitude, tp-taylor, tp-hessian).
- pruning: ``Pruner`` (a network's graph, widths and links held for its prune steps), ``input_links``,
  ``trim`` (checks itself against the masked network: ``TrimMismatchError``), ``channel_groups``,
  ``site_sizes`` (``"fc1:in"``: a Linear layer's input features; ``"blocks.0.attn:heads"``: heads),
  ``ChannelScatter`` (a zero-padding shortcut that stays prunable), ``DirichletImportance`` (posterior
  means as a Torch-Pruning importance); ``save_pruned``, ``load_pruned``, ``export_network``.
- counting: ``count_macs``, ``count_ops``, ``count_params``, ``mac_model`` / ``param_model``;
  training: ``TrainConfig``, ``train`` (any ``loss``), ``evaluate`` (any ``metric``), ``Distill``;
  likelihoods (the switch fit's, the data criteria's and ``train``'s via ``nll``): ``"categorical"``,
  ``"bernoulli"`` (dense targets too), ``Gaussian``, or a callable outputs -> distribution; data: ``load_mnist``, ``load_cifar10``,
  ``data_root`` (``$PYRO_DIRICHLET_DATA``), ``ArrayDataset``, ``FeatureDataset``; ``simulate``.
"""
from .allocations import ALLOCATIONS
from .criteria import CRITERIA, ChannelScores, Criterion
from .channel_map import ChannelScatter
from .counting import count_macs, count_ops, count_params, mac_model, param_model
from .cifar10 import load_cifar10
from .data import ArrayDataset, DataNotFoundError, FeatureDataset, data_root, load_mnist
from .devices import resolve_device
from .export import export_network
from .estimators import switch_elbo
from .fit import FitConfig, fit_switches
from . import hf
from .groups import channel_groups
from .interop import DirichletImportance
from .io import CheckpointError
from .posterior import load_idata, posterior_idata, posterior_means, save_idata, summarize
from .allocation import (
    CoupledLayersError,
    counts_for_budget,
    counts_for_mass,
    format_architecture,
    keep_indices,
    parse_architecture,
)
from .pruning import TrimMismatchError, input_links, trim
from .pruner import Pruner
from .storage import load_pruned, save_pruned
from .sites import site_sizes
from .sequential import fit_sequential
from .simulate import simulate
from .form_rule import network_kind, resolve_switch
from .switch_config import SwitchConfig
from .switch_ops import dirichlet_switch
from .switches import SwitchedNetwork, SwitchGuide
from .likelihoods import Gaussian, nll
from .training import Distill, TrainConfig, evaluate, train
from .user_model import switch_layers, unfold_particles

__all__ = [
    "ALLOCATIONS", "ArrayDataset", "Pruner", "CRITERIA", "hf", "ChannelScatter", "ChannelScores", "Criterion", "CheckpointError", "DirichletImportance", "CoupledLayersError", "DataNotFoundError", "FeatureDataset", "FitConfig",
    "Distill", "Gaussian", "nll", "TrimMismatchError", "SwitchConfig", "SwitchGuide", "SwitchedNetwork", "TrainConfig", "channel_groups", "count_macs", "count_ops", "count_params",
    "counts_for_budget", "counts_for_mass", "data_root", "dirichlet_switch", "evaluate", "export_network", "fit_switches", "fit_sequential",
    "format_architecture", "input_links", "keep_indices", "mac_model", "param_model", "load_idata", "load_cifar10", "load_mnist", "load_pruned",
    "parse_architecture",
    "posterior_idata", "posterior_means", "network_kind", "resolve_device", "resolve_switch", "save_idata", "save_pruned",
    "simulate", "site_sizes", "summarize", "switch_elbo", "switch_layers", "train", "trim",
    "unfold_particles",
]
