"""pyro-dirichlet: Bayesian structured pruning with Dirichlet importance switches, in Pyro.

Public API (one screen):

- switches: ``SwitchConfig`` (prior and form, the defaults of every entry point),
  ``SwitchedNetwork(net, sites, switch)`` (``.model(x, y, ...)`` is the Pyro model),
  ``SwitchGuide`` (``Dir(phi)`` per site), ``dirichlet_switch`` (primitive for your own model).
- estimators: ``switch_elbo("mean" | "mc", S)`` (the ELBO owns the estimator: ``MeanSwitchELBO``
  fits the guide's mean, ``MeanDirichlet``).
- fitting: ``FitConfig``, ``fit_switches`` (a ``SwitchedNetwork`` or your own Pyro model),
  ``fit_sequential`` (each site fitted with the earlier ones pruned to given counts);
  your own model: ``unfold_particles`` (logits for the data plate), ``switch_layers`` (site -> layer).
- posterior: ``posterior_idata``, ``posterior_means``, ``summarize``, ``save_idata``, ``load_idata``.
- allocation (how many channels a site keeps): ``parse_architecture``, ``counts_for_budget``
  (``normalise_scores``; ``MIN_KEEP``, ``PER_MAC``), ``counts_for_mass``, ``keep_indices``, ``feasible_counts``.
- pruning: ``Pruner`` (a network's graph, widths and links held for its prune steps), ``input_links``, ``trim`` (checks itself against the masked network: ``TrimMismatchError``);
  storage: ``save_pruned``, ``load_pruned``; ``export_network`` (a TorchScript / torch.export / ONNX file, checked).
- sites: ``InputSelect``, ``site_sizes`` (``"fc1:in"`` names a Linear layer's input features,
  ``"blocks.0.attn:heads"`` an attention module's heads: :mod:`.heads`); ``hf``: Hugging Face
  models (``hf.Logits``, ``hf.save_pretrained`` / ``hf.from_pretrained`` of a pruned model);
  ``channel_groups`` (channels that go together, one switch each); ``ChannelScatter`` (a
  zero-padding shortcut that stays prunable); ``DirichletImportance``
  (posterior means as a Torch-Pruning importance).
- criteria: ``CRITERIA`` (``name -> criterion(net, sites, data, seed) -> ChannelScores``: l1, l2,
  taylor, fisher, group-lasso, data-free, random, dirichlet, tp-magnitude, tp-taylor, tp-hessian);
  allocations: ``ALLOCATIONS`` (``name -> allocation(net, scores, budget_macs, ...) -> counts``:
  per-mac, by-score, uniform, likelihood, likelihood-path; :mod:`.allocations`).
- counting: ``count_macs``, ``count_ops`` (MACs and the LeNet-5 tables' FLOPs), ``count_params``,
  ``mac_model`` / ``param_model`` (MACs / parameters of keep counts without trimming); training: ``TrainConfig``, ``train``, ``evaluate``;
  data: ``load_mnist``, ``load_cifar10``, ``data_root`` (``$PYRO_DIRICHLET_DATA``), ``FeatureDataset``; ``simulate``
  (the synthetic study's ground truth).
"""
from .allocations import ALLOCATIONS
from .criteria import CRITERIA, ChannelScores, Criterion
from .channel_map import ChannelScatter
from .counting import count_macs, count_ops, count_params, mac_model, param_model
from .cifar10 import load_cifar10
from .data import DATA_ENV, ArrayDataset, DataNotFoundError, FeatureDataset, data_root, load_mnist
from .devices import resolve_device
from .export import export_network
from .estimators import MeanDirichlet, MeanSwitchELBO, switch_elbo
from .fit import FitConfig, fit_switches
from . import hf
from .groups import ChannelGroup, channel_groups
from .interop import DirichletImportance
from .io import CheckpointError
from .posterior import load_idata, posterior_idata, posterior_means, save_idata, summarize
from .allocation import (
    CoupledLayersError,
    counts_for_budget,
    counts_for_mass,
    feasible_counts,
    format_architecture,
    keep_indices,
    normalise_scores,
    parse_architecture,
)
from .pruning import TrimMismatchError, input_links, trim
from .pruner import Pruner
from .storage import load_pruned, save_pruned
from .sites import InputSelect, site_sizes
from .sequential import fit_sequential
from .simulate import SyntheticProblem, simulate
from .form_rule import network_kind, resolve_switch
from .switch_config import SwitchConfig
from .switches import SwitchedNetwork, SwitchGuide, dirichlet_switch, scale_channels, switch_factor
from .training import Distill, TrainConfig, evaluate, train
from .user_model import switch_layers, unfold_particles

__all__ = [
    "ALLOCATIONS", "ArrayDataset", "Pruner", "CRITERIA", "hf", "ChannelGroup", "ChannelScatter", "ChannelScores", "Criterion", "CheckpointError", "DirichletImportance", "CoupledLayersError", "DATA_ENV", "DataNotFoundError", "FeatureDataset", "FitConfig",
    "Distill", "InputSelect", "MeanDirichlet", "TrimMismatchError", "MeanSwitchELBO", "SwitchConfig", "SwitchGuide", "SwitchedNetwork", "TrainConfig", "channel_groups", "count_macs", "count_ops", "count_params",
    "counts_for_budget", "counts_for_mass", "data_root", "dirichlet_switch", "evaluate", "export_network", "feasible_counts", "fit_switches", "fit_sequential",
    "format_architecture", "input_links", "keep_indices", "mac_model", "param_model", "load_idata", "load_cifar10", "load_mnist", "load_pruned", "normalise_scores",
    "parse_architecture",
    "posterior_idata", "posterior_means", "network_kind", "resolve_device", "resolve_switch", "save_idata", "save_pruned", "scale_channels", "switch_factor",
    "simulate", "site_sizes", "summarize", "switch_elbo", "switch_layers", "SyntheticProblem", "train", "trim",
    "unfold_particles",
]
