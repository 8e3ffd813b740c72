"""Every criterion in one harness: the LeNet-5 compression curve (``pyro-dirichlet compare``).

One trained LeNet-5-Caffe (the pipeline's ``pretrained-<h>`` folder under ``run_dir``). For
each seed and method the channel scores are computed once (cached in
``<pretrained>/scores-<h>``, keyed by the scoring settings), and each (method, allocation,
budget, seed) run once (cached in ``<pretrained>/compare-<h>/runs``, keyed by every setting
that changes a result), so a re-run resumes. Allocations of each MAC budget:

- ``same``: every method keeps the **same per-site counts**: the paper's 5-8-45-15 at
  136,825 MACs, elsewhere the largest uniform keep fraction ``f`` (``max(1, round(f * K_l))``
  in every site, fc1's input features clamped to 1..16 per kept conv2 filter) that fits.
  Only *which* channels are kept comes from each method, so this measures the rankings.
- ``own``: each method's scores ranked across layers (:func:`pyro_dirichlet.counts_for_budget`)
  after the normalisation its paper uses (its criterion's ``normalisation``,
  :mod:`pyro_dirichlet.criteria`), so the method also chooses how many channels each layer keeps.
- ``mass`` (Dirichlet methods only): every layer keeps its top channels holding the same
  share of its posterior mass, the largest share that fits
  (:func:`pyro_dirichlet.allocation.counts_for_mass_budget`): the posterior's own allocation,
  insensitive to the near-zero means of the channels it switched off.
- ``cost``: as ``own``, but each site's normalised scores are divided by the MACs one of its
  channels costs, so the global order is value per MAC (the greedy knapsack order).

Each pruned network is evaluated right after pruning and after the same fine-tuning (Adam,
lr 1e-3, cosine, ``finetune_epochs``, seed); the last epoch is reported, never the best.

Dirichlet methods fit the switches on the training set with ``switch``
(:class:`~pyro_dirichlet.SwitchConfig`'s defaults, as the pipeline):
``dirichlet-mean`` (mean, layer by layer), ``dirichlet-mc`` (mc with ``mc_samples``,
layer by layer), ``dirichlet-joint`` (mean, all layers jointly, for ``fit_epochs`` times
the number of layers: the same number of SVI steps as layer by layer). Seeds change the
fit/score randomness, the random scores and the fine-tuning shuffles.
"""
from __future__ import annotations

import copy
import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch.nn as nn
from tqdm.auto import tqdm

import pyro_dirichlet as pdl
from pyro_dirichlet import allocations, criteria, devices
from pyro_dirichlet.io import keyed_folder, load_json, load_torch, save_json, save_text, save_torch
from pyro_dirichlet.sites import site_sizes

from . import paper, pipeline
from .compare_report import markdown, plot

DIRICHLET = {"dirichlet-mean": ("mean", "layerwise"), "dirichlet-mc": ("mc", "layerwise"),
             "dirichlet-joint": ("mean", "joint")}
METHODS = (*(name for name in criteria.CRITERIA if name != "dirichlet"), *DIRICHLET)
BUDGETS = (1_000_000, 500_000, 300_000, 200_000, 136_825, 105_000)
ALLOCATIONS = ("same", "own", "mass", "cost")

@dataclass
class CompareConfig(pipeline.StudySettings):
    run_dir: str = "runs/lenet5-compare"  # holds the pipeline's pretrained-<h> folder
    methods: tuple[str, ...] = METHODS
    budgets: tuple[int, ...] = BUDGETS
    allocations: tuple[str, ...] = ALLOCATIONS
    seeds: tuple[int, ...] = (0, 1, 2)
    finetune_epochs: int = 10
    score_batches: int = 10  # taylor / fisher: batches of 100 training examples
    group_lasso_strength: float = 1e-4
    group_lasso_epochs: int = 2
    fit_epochs: int = 1  # per stage (per layer in layerwise mode)
    mc_samples: int = 4
    switch: pdl.SwitchConfig = field(default_factory=pdl.SwitchConfig)  # the Dirichlet methods' switch

    def __post_init__(self):
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; choose from {list(METHODS)}")
        if not self.allocations or set(self.allocations) - set(ALLOCATIONS):
            raise ValueError(f"allocations {list(self.allocations)}: choose one or more of {list(ALLOCATIONS)}")
        if not self.seeds or self.finetune_epochs < 0 or min(self.budgets, default=1) < 1:
            raise ValueError("need at least one seed, finetune_epochs >= 0 and positive budgets")


def uniform_counts(net: nn.Module, budget: int, links: pdl.allocation.Links) -> dict[str, int]:
    """The largest uniform keep share of every site (at least one channel) whose zoo network fits ``budget`` MACs."""
    return allocations.uniform_counts(net, site_sizes(net), budget, links=links, min_keep=0.0)


def budget_counts(net: nn.Module, budget: int, links: pdl.allocation.Links) -> dict[str, int]:
    sizes = site_sizes(net)
    if budget in paper.PAPER_ARCH and net.zoo_name == "lenet5" and tuple(sizes.values()) == (20, 50, 800, 500):
        return pdl.parse_architecture(paper.PAPER_ARCH[budget], sizes, links=links)
    return uniform_counts(net, budget, links)


def criterion_of(cfg: CompareConfig, method: str, num_layers: int, checkpoint: Path | None = None
                 ) -> criteria.Criterion:
    """The registry's criterion for ``method`` with the comparison's settings."""
    if method in DIRICHLET:
        estimator, mode = DIRICHLET[method]
        epochs = cfg.fit_epochs * (num_layers if mode == "joint" else 1)  # as many SVI steps as layerwise
        fit_cfg = pdl.FitConfig(estimator=estimator, mode=mode, num_samples=cfg.mc_samples, epochs=epochs)
        return criteria.Dirichlet(fit_cfg, cfg.switch, checkpoint)
    criterion = criteria.CRITERIA[method]
    if method in ("taylor", "fisher"):
        return replace(criterion, num_batches=cfg.score_batches)
    if method == "group-lasso":
        return replace(criterion, strength=cfg.group_lasso_strength, epochs=cfg.group_lasso_epochs)
    return criterion


def method_scores(cfg: CompareConfig, method: str, seed: int, net: nn.Module, train_data, folder: Path
                  ) -> criteria.ChannelScores:
    """One method's scores for one seed (``.network``: the network to prune), cached in ``folder``."""
    layers = list(net.prunable_layers)
    cache = folder / f"{method}-s{seed}.pt"
    criterion = criterion_of(cfg, method, len(layers), cache.with_suffix(".ckpt"))
    if cache.exists():
        state = load_torch(cache)
        network = net  # trim works on a copy
        if state["net"] is not None:
            network = copy.deepcopy(net)
            network.load_state_dict(state["net"])
        return criteria.ChannelScores(state["scores"], criterion.normalisation, network)
    t0 = time.perf_counter()
    scores = criterion(copy.deepcopy(net), layers, train_data, seed)
    retrained = scores.network if method == "group-lasso" else None
    save_torch({"scores": dict(scores), "seconds": time.perf_counter() - t0,
                "net": None if retrained is None else retrained.state_dict()}, cache)
    if retrained is None:
        scores.network = net
    return scores


def prune_and_finetune(cfg: CompareConfig, net: nn.Module, scores: dict, counts: dict, links: pdl.allocation.Links,
                       seed: int, train_data, test_data) -> dict:
    small, _, before = pipeline.prune_to(net, scores, counts, links, test_data)
    after = pipeline.finetune_measured(small, train_data, test_data,
                                       pdl.TrainConfig(epochs=cfg.finetune_epochs, lr=1e-3, seed=seed))
    return {"architecture": before["architecture"], "macs": after["macs"], "params": after["params"],
            "error_pruned_pct": before["error_pct"], "error_finetuned_pct": after["error_pct"]}


class Harness:
    """The pretrained network, its data and the two caches (scores, runs) of one configuration."""

    def __init__(self, cfg: CompareConfig):
        base = cfg.pipeline(cfg.run_dir)
        self.train_data, self.test_data = pipeline.load_data(base)
        self.net = pipeline.pretrain(base, self.train_data, self.test_data)
        cfg = self.cfg = replace(cfg, switch=pdl.resolve_switch(cfg.switch, self.net))  # keys name the form used
        scoring = ("score_batches", "group_lasso_strength", "group_lasso_epochs", "fit_epochs", "mc_samples",
                   *cfg.switch.settings(compact=True))
        settings = asdict(cfg)
        del settings["switch"]
        settings.update(cfg.switch.settings(compact=True))
        self.scores_folder = keyed_folder(base.pretrained_dir, "scores", {k: settings[k] for k in scoring})
        self.folder = keyed_folder(base.pretrained_dir, "compare", {
            k: v for k, v in settings.items()
            if k not in ("run_dir", "methods", "budgets", "allocations", "seeds", "device", "data_root", "progress")})
        self.links = pdl.input_links(self.net, self.net.prunable_layers, self.net.input_shape)
        self._scores: dict[tuple[str, int], criteria.ChannelScores] = {}

    def scores(self, method: str, seed: int) -> criteria.ChannelScores:
        if (method, seed) not in self._scores:
            self._scores = {(method, seed): method_scores(self.cfg, method, seed, self.net, self.train_data,
                                                          self.scores_folder)}
        return self._scores[(method, seed)]

    def counts(self, method: str, allocation: str, budget: int, seed: int) -> dict[str, int]:
        if allocation == "same":
            return budget_counts(self.net, budget, self.links)
        scores = self.scores(method, seed)
        if allocation == "mass":
            return pdl.allocation.counts_for_mass_budget(scores, budget, pdl.mac_model(self.net, list(scores)), self.links)
        # the method's own global ranking (its criterion's normalisation), per MAC for "cost"
        return pdl.counts_for_budget(self.net, scores, budget, self.net.input_shape, links=self.links,
                                     per_mac=allocation == "cost")

    def run(self, method: str, allocation: str, budget: int, seed: int) -> dict:
        """One pruned and fine-tuned network's record, computed once (``<folder>/runs``)."""
        record = self.folder / "runs" / f"{method}-{allocation}-{budget}-s{seed}.json"
        if not record.exists():
            scores = self.scores(method, seed)
            counts = self.counts(method, allocation, budget, seed)
            result = prune_and_finetune(self.cfg, scores.network, scores, counts, self.links, seed, self.train_data,
                                        self.test_data)
            save_json({"method": method, "allocation": allocation, "budget_macs": budget, "seed": seed} | result,
                      record)
        return load_json(record)

    def full(self) -> dict:
        net = self.net
        error = pdl.evaluate(net, self.test_data)
        return {"method": "full", "allocation": None, "budget_macs": None,
                "architecture": pdl.format_architecture(site_sizes(net)), **pdl.count_ops(net, net.input_shape),
                "params": pdl.count_params(net), "error_pruned_pct": error, "error_finetuned_pct": error}


def allocations_of(cfg: CompareConfig, method: str) -> list[str]:
    """The configured allocations that apply to ``method`` (``mass``: Dirichlet methods only)."""
    return [a for a in cfg.allocations if a != "mass" or method in DIRICHLET]


def run_compare(cfg: CompareConfig, results_dir: str | Path = "results", command: str = "") -> dict:
    """Every (seed, method, allocation, budget) run, then ``lenet5_baselines.json``, ``.md``
    and ``.png`` in ``results_dir``."""
    harness = Harness(cfg)
    runs = []
    total = len(cfg.seeds) * sum(len(allocations_of(cfg, m)) for m in cfg.methods) * len(cfg.budgets)
    with tqdm(total=total, desc="compare", disable=not cfg.progress) as bar:
        for seed in cfg.seeds:
            for method in cfg.methods:
                for allocation in allocations_of(cfg, method):
                    for budget in cfg.budgets:
                        bar.set_postfix_str(f"seed {seed} {method} {allocation} {budget}")
                        runs.append(harness.run(method, allocation, budget, seed))
                        bar.update()
    result = {"device": devices.device_name(pdl.resolve_device(cfg.device)), "command": command, "config": asdict(cfg), "folder": str(harness.folder),
              "full": harness.full(), "runs": runs, "paper_points": paper.paper_points()}
    results_dir = Path(results_dir)
    save_json(result, results_dir / "lenet5_baselines.json")
    save_text(markdown(result), results_dir / "lenet5_baselines.md")
    plot(result, results_dir / "lenet5_baselines.png")
    return result


def run_finetune_length(cfg: CompareConfig, epochs: tuple[int, ...], results_dir: str | Path = "results",
                        command: str = "") -> dict:
    """How long fine-tuning must be: the error after each of ``epochs`` (a full cosine run each)
    for ``cfg.methods`` at the smallest budget, ``same`` allocation, every seed. The runs are
    the comparison's own records for that ``finetune_epochs``, so the chosen length is reused.
    Writes ``lenet5_finetune_length.{json,md}``."""
    budget = min(cfg.budgets)
    rows = []
    for n in epochs:
        harness = Harness(replace(cfg, finetune_epochs=n))
        for method in cfg.methods:
            runs = [harness.run(method, "same", budget, seed) for seed in cfg.seeds]
            errors = [r["error_finetuned_pct"] for r in runs]
            rows.append({"method": method, "finetune_epochs": n, "budget_macs": budget,
                         "architecture": runs[0]["architecture"], "errors_pct": errors,
                         "mean_pct": statistics.mean(errors),
                         "sd_pct": statistics.stdev(errors) if len(errors) > 1 else 0.0})
    result = {"device": devices.device_name(pdl.resolve_device(cfg.device)), "command": command, "config": asdict(cfg), "rows": rows}
    lines = [f"Command: `{command}` (device: {result['device']}). Test error (%) after fine-tuning for n epochs "
             f"(Adam, lr 1e-3, cosine over the n epochs; last epoch), {budget:,} MACs "
             f"({rows[0]['architecture']}), same counts for every method, mean ± sd over {len(cfg.seeds)} seeds:", "",
             "| method | " + " | ".join(f"{n} epochs" for n in epochs) + " |", "|---" * (len(epochs) + 1) + "|"]
    for method in cfg.methods:
        cells = [f"{r['mean_pct']:.2f} ± {r['sd_pct']:.2f}" for r in rows if r["method"] == method]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    save_json(result, Path(results_dir) / "lenet5_finetune_length.json")
    save_text("\n".join(lines) + "\n", Path(results_dir) / "lenet5_finetune_length.md")
    return result
