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
  (:func:`pyro_dirichlet.pruning.counts_for_mass_budget`): the posterior's own allocation,
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
from pyro_dirichlet import criteria, devices
from pyro_dirichlet.io import atomic_write, keyed_folder, load_json, load_torch, save_json, save_text, save_torch
from pyro_dirichlet.models import build_model
from pyro_dirichlet.sites import site_sizes

from . import pipeline

DIRICHLET = {"dirichlet-mean": ("mean", "layerwise"), "dirichlet-mc": ("mc", "layerwise"),
             "dirichlet-joint": ("mean", "joint")}
METHODS = (*(name for name in criteria.CRITERIA if name != "dirichlet"), *DIRICHLET)
BUDGETS = (1_000_000, 500_000, 300_000, 200_000, 136_825, 105_000)
PAPER_ARCH = {136_825: "5-8-45-15"}
ALLOCATIONS = ("same", "own", "mass", "cost")

# Supplement Table 1 (LeNet-5-Caffe on MNIST): method, architecture, error %, stated FLOPs.
# Checked rows (GD, SBP, BC-GNJ, BC-GHS): architecture, error and FLOPs as stated in the
# LeNet-5 table of Tang et al., "FLOPs as a direct optimization objective"; their FLOPs are
# the MACs plus one add per output bias element (``paper_flops``). RDP, FDOO, GL: architecture
# and error as recalled from the supplement, not checked here (stated FLOPs unknown: None).
PAPER_POINTS = [
    ("BC-GNJ", "8-13-88-13", 1.0, 290_000), ("BC-GHS", "5-10-76-16", 1.0, 158_000),
    ("RDP", "4-7-110-16", 1.0, None), ("FDOO", "2-7-112-478", 1.1, None), ("GL", "3-12-192-500", 1.0, None),
    ("GD", "7-13-208-16", 1.1, 254_000), ("SBP", "3-18-284-283", 0.9, 217_000),
    ("Dirichlet", "5-8-45-15", 1.1, 140_000),
]


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


def uniform_counts(net: nn.Module, budget: int, links: pdl.pruning.Links) -> dict[str, int]:
    """The largest uniform keep fraction whose zoo network fits ``budget`` MACs."""
    sizes = site_sizes(net)

    def counts(f: float) -> dict[str, int]:
        return pdl.feasible_counts({name: max(1, round(f * k)) for name, k in sizes.items()}, links)

    macs_of = pdl.mac_model(net, list(sizes))

    def macs(f: float) -> int:
        return macs_of(counts(f))

    if macs(0.0) > budget:
        raise ValueError(f"budget {budget} MACs is below the smallest network ({macs(0.0)} MACs, one channel a layer)")
    return counts(pdl.pruning.largest_fitting(lambda f: macs(f) <= budget, 0.0))


def budget_counts(net: nn.Module, budget: int, links: pdl.pruning.Links) -> dict[str, int]:
    sizes = site_sizes(net)
    if budget in PAPER_ARCH and net.zoo_name == "lenet5" and tuple(sizes.values()) == (20, 50, 800, 500):
        return pdl.parse_architecture(PAPER_ARCH[budget], sizes, links=links)
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


def normalisation_of(method: str) -> str:
    return criteria.CRITERIA["dirichlet" if method in DIRICHLET else method].normalisation


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


def prune_and_finetune(cfg: CompareConfig, net: nn.Module, scores: dict, counts: dict, links: pdl.pruning.Links,
                       seed: int, train_data, test_data) -> dict:
    keep = pdl.keep_indices(scores, counts, links)
    small = pdl.trim(net, keep, net.input_shape)
    pruned_error = pdl.evaluate(small, test_data)
    pdl.train(small, train_data, pdl.TrainConfig(epochs=cfg.finetune_epochs, lr=1e-3, seed=seed), progress=False)
    return {"architecture": pdl.format_architecture(counts), "macs": pdl.count_macs(small, net.input_shape),
            "params": pdl.count_params(small), "error_pruned_pct": pruned_error,
            "error_finetuned_pct": pdl.evaluate(small, test_data)}


class Harness:
    """The pretrained network, its data and the two caches (scores, runs) of one configuration."""

    def __init__(self, cfg: CompareConfig):
        self.cfg = cfg
        base = cfg.pipeline(cfg.run_dir)
        self.train_data, self.test_data = pipeline.load_data(base)
        self.net = pipeline.pretrain(base, self.train_data, self.test_data)
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
            return pdl.pruning.counts_for_mass_budget(scores, budget, pdl.mac_model(self.net, list(scores)), self.links)
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
              "full": harness.full(), "runs": runs, "paper_points": paper_points()}
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


def paper_points() -> list[dict]:
    """The supplement's Table 1 points, with MACs, paper FLOPs and params from this project's counter."""
    points = []
    for method, arch, error, stated_flops in PAPER_POINTS:
        small = build_model("lenet5", [int(w) for w in arch.split("-")])
        points.append({"method": method, "architecture": arch, "error_pct": error, "stated_flops": stated_flops,
                       **pdl.count_ops(small, small.input_shape), "params": pdl.count_params(small)})
    return points


def aggregate(runs: list[dict]) -> dict[tuple[str, str, int], dict]:
    """``{(method, allocation, budget): mean and sd over seeds of both errors and of the MACs,
    and every seed's architecture}``."""
    groups: dict[tuple[str, str, int], list[dict]] = {}
    for r in runs:
        groups.setdefault((r["method"], r["allocation"], r["budget_macs"]), []).append(r)
    table = {}
    for key, rs in groups.items():
        def stats(field_name):
            values = [r[field_name] for r in rs]
            return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)
        table[key] = {"pruned": stats("error_pruned_pct"), "finetuned": stats("error_finetuned_pct"),
                      "macs": stats("macs"), "architectures": [r["architecture"] for r in rs], "seeds": len(rs)}
    return table


ALLOCATION_TITLE = {"same": "same per-layer counts for every method",
                    "own": "each method's own allocation (its normalised scores ranked across layers)",
                    "mass": "Dirichlet's posterior-mass allocation (the same share of each layer's mass)",
                    "cost": "each method's own ranking per MAC (normalised score / MACs of one channel)"}


def markdown(result: dict) -> str:
    table = aggregate(result["runs"])
    full = result["full"]
    lines = [f"Command: `{result['command']}` (device: {result['device']}). Full LeNet-5-Caffe {full['architecture']}: "
             f"{full['error_finetuned_pct']:.2f}% error, {full['macs']:,} MACs. Fine-tuning: "
             f"{result['config']['finetune_epochs']} epochs, last epoch reported.", ""]
    for allocation in dict.fromkeys(a for _, a, _ in table):
        keys = [k for k in table if k[1] == allocation]
        budgets = sorted({b for _, _, b in keys}, reverse=True)
        methods = list(dict.fromkeys(m for m, _, _ in keys))
        if allocation == "same":
            heads = [f"{b:,} ({table[(methods[0], allocation, b)]['architectures'][0]})" for b in budgets]
        else:
            heads = [f"≤ {b:,}" for b in budgets]
        cell = {m: [table[(m, allocation, b)] for b in budgets] for m in methods}
        for kind, title in (("finetuned", "after fine-tuning"), ("pruned", "right after pruning (no fine-tuning)")):
            lines += _table(f"**{ALLOCATION_TITLE[allocation]}**: test error (%) {title}, mean ± sd over seeds:",
                            heads, {m: [f"{c[kind][0]:.2f} ± {c[kind][1]:.2f}" for c in cell[m]] for m in methods})
        if allocation != "same":
            lines += _table("Architectures each method chose (seed 0) and mean MACs over seeds:", heads,
                            {(f"{m} ({normalisation_of(m)})" if allocation in ("own", "cost") else m):
                             [f"{c['architectures'][0]} ({c['macs'][0]:,.0f})" for c in cell[m]] for m in methods})
    lines += ["Supplement Table 1 points on LeNet-5-Caffe, recounted by this project's counter (paper FLOPs = MACs + "
              "one add per output bias element; stated FLOPs: see PAPER_POINTS):", "",
              "| method | architecture | error (%) | stated FLOPs | MACs (ours) | paper FLOPs (ours) | params (ours) |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {p['method']} | {p['architecture']} | {p['error_pct']} | "
              f"{'—' if p['stated_flops'] is None else format(p['stated_flops'], ',')} | {p['macs']:,} | "
              f"{p['paper_flops']:,} | {p['params']:,} |" for p in result["paper_points"]]
    return "\n".join(lines) + "\n"


def _table(title: str, heads: list[str], rows: dict[str, list[str]]) -> list[str]:
    """Markdown lines: ``title``, then one row per method."""
    return [title, "", "| method | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|",
            *(f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows.items()), ""]


def plot(result: dict, path: Path) -> Path:
    """Test error after fine-tuning against MACs (log axis), one curve per method, one panel
    per allocation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    table = aggregate(result["runs"])
    allocations = list(dict.fromkeys(a for _, a, _ in table))
    fig, axes = plt.subplots(1, len(allocations), figsize=(7 * len(allocations), 5), squeeze=False)
    for ax, allocation in zip(axes[0], allocations):
        methods = list(dict.fromkeys(m for m, a, _ in table if a == allocation))
        for m in methods:
            keys = sorted((k for k in table if k[:2] == (m, allocation)), key=lambda k: table[k]["macs"][0])
            macs = [table[k]["macs"][0] for k in keys]
            mean = [table[k]["finetuned"][0] for k in keys]
            sd = [table[k]["finetuned"][1] for k in keys]
            style = "-o" if m.startswith("dirichlet") else "--."
            ax.errorbar(macs, mean, yerr=sd, fmt=style, capsize=2, label=m, linewidth=1.2, markersize=4)
        for p in result["paper_points"]:
            ax.plot(p["macs"], p["error_pct"], "k*", markersize=8)
            ax.annotate(p["method"], (p["macs"], p["error_pct"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.axhline(result["full"]["error_finetuned_pct"], color="gray", linewidth=0.8, label="full network")
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis_formatter in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
            axis_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.set_xlabel("MACs (log; mean over seeds)")
        ax.set_title(f"{allocation}: {ALLOCATION_TITLE[allocation]}", fontsize=9)
        ax.legend(fontsize=7, ncol=2)
    axes[0][0].set_ylabel("test error after fine-tuning (%, log)")
    fig.suptitle("LeNet-5-Caffe on MNIST (stars: supplement Table 1)")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path
