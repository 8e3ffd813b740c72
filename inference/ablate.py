"""What makes the switch posterior rank channels well? The ablation on LeNet-5-Caffe
(``pyro-dirichlet ablate``).

One LeNet-5-Caffe is pretrained with ``holdout`` training examples held out (the
pipeline's ``pretrained-<h>`` folder under ``run_dir``). Each variant changes a few fit
settings of ``BASE``; for each variant and seed the switches of all four sites are fitted
and the posterior means scored by:

- ``spearman``: per site, the rank correlation with the measured removal cost of each
  channel (:func:`pyro_dirichlet.diagnostics.removal_costs`, computed once, on the first
  ``cost_examples`` test images: data no fit sees);
- ``error_pct``: test error right after pruning (no fine-tuning) at each budget, with the
  same per-site counts for every variant (compare's uniform keep fraction), on the other
  test images;
- ``kendall``: per site, Kendall's tau between the rankings of two seeds (mean over pairs);
- ``fit_seconds``.

``l1`` and ``random`` are reference rows (scored the same way). Each (variant, seed)'s
scores and fit time are cached in ``<pretrained>/ablate/<variant>-<h>/result.json``, keyed by
its settings, so a rerun resumes; the measures are recomputed on every run (about 45 s),
so changed budgets never meet old errors. Results go to ``results/archive/lenet5_ablation.{json,md}``.
"""
from __future__ import annotations

import itertools
import math
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

import pyro_dirichlet as pdl
from pyro_dirichlet import criteria
from pyro_dirichlet.diagnostics import kendall_tau, removal_costs, spearman
from pyro_dirichlet.io import keyed_folder, load_json, load_torch, save_json, save_text, save_torch

from . import pipeline
from .compare import uniform_counts

# The base fit: held-out data, mean estimator, one site at a time, 3 epochs a site, the
# pipeline's other defaults, and the paper's "Ks" form: the ablation's baseline row, against
# which the variants (the "form-s" rows that led to SwitchConfig's default among them) change
# one or two settings. Variants may also set "temperature" (a logit temperature fitted beside
# the switches; off unless named, so it is not in BASE's key).
BASE = {"fit_data": "holdout", "estimator": "mean", "num_samples": 16, "mode": "layerwise", "epochs": 3,
        "batch_size": 100, "lr": 0.05, "anneal_epochs": 1.0, "kl_weight": 1.0, "alpha0": 0.5, "form": "Ks",
        "steepness": 3.0}
VARIANTS = {
    "base": {},
    "fit-on-train": {"fit_data": "train"},
    "kl-1-no-anneal": {"anneal_epochs": 0.0},
    "kl-0.01": {"kl_weight": 0.01},
    "alpha0-0.05": {"alpha0": 0.05},
    "alpha0-1": {"alpha0": 1.0},
    "alpha0-2": {"alpha0": 2.0},
    "lr-0.01": {"lr": 0.01},
    "lr-0.2": {"lr": 0.2},
    "batch-25": {"batch_size": 25},
    "batch-400": {"batch_size": 400},
    "epochs-1": {"epochs": 1},
    "epochs-9": {"epochs": 9},
    "joint": {"mode": "joint"},  # same epochs per switch and the same annealing as layer by layer
    "mc-4": {"estimator": "mc", "num_samples": 4},
    "mc-16": {"estimator": "mc", "num_samples": 16},
    "form-s": {"form": "s"},
    "gate-1": {"form": "gate", "steepness": 1.0},
    "gate-3": {"form": "gate", "steepness": 3.0},
    "gate-10": {"form": "gate", "steepness": 10.0},
    "gate-3-mc-16": {"form": "gate", "estimator": "mc", "num_samples": 16},
    "gate-3-fit-on-train": {"form": "gate", "fit_data": "train"},
    "form-bn": {"form": "bn"},  # the authors' BatchNorm in training mode after an s-scaled channel
    "temperature": {"temperature": True},
    "gate-3-temperature": {"form": "gate", "temperature": True},
    # added after the first run showed form "s" ahead: is it the scale (a softer softmax) or the form?
    "form-s-temperature": {"form": "s", "temperature": True},
    "form-s-fit-on-train": {"form": "s", "fit_data": "train"},
    "form-s-mc-16": {"form": "s", "estimator": "mc", "num_samples": 16},
    "form-s-joint": {"form": "s", "mode": "joint"},
    "form-s-alpha0-0.05": {"form": "s", "alpha0": 0.05},
    "form-s-epochs-9": {"form": "s", "epochs": 9},
    # added with the library's per-network form rule (pyro_dirichlet/form_rule.py): is "s" still
    # ahead of "rKs" (r 0.5) on a network without normalisation layers?
    "form-rKs": {"form": "rKs"},
}
REFERENCES = ("l1", "random")


@dataclass
class AblateConfig(pipeline.StudySettings):
    run_dir: str = "runs/lenet5-ablate"
    variants: tuple[str, ...] = (*VARIANTS, *REFERENCES)
    seeds: tuple[int, ...] = (0, 1, 2)
    holdout: int = 10_000
    budgets: tuple[int, ...] = (500_000, 200_000, 136_825)
    cost_examples: int = 5_000  # test images for removal costs; the rest measure the errors

    def __post_init__(self):
        unknown = [v for v in self.variants if v not in VARIANTS and v not in REFERENCES]
        if unknown:
            raise ValueError(f"unknown variant(s) {unknown}; choose from {[*VARIANTS, *REFERENCES]}")
        if not self.seeds or self.holdout < 1 or self.cost_examples < 1:
            raise ValueError("need at least one seed, --holdout >= 1 and --cost-examples >= 1")


def settings_of(variant: str) -> dict:
    return {"reference": variant} if variant in REFERENCES else {**BASE, **VARIANTS[variant]}


def variant_scores(variant: str, seed: int, net, pretrain_data, fit_data) -> tuple[dict, float]:
    """``({site: (K,) scores}, seconds)`` of one variant and seed."""
    sites = list(net.prunable_layers)
    t0 = time.perf_counter()
    if variant in REFERENCES:
        scores = criteria.norm_scores(net, sites, p=1) if variant == "l1" else criteria.random_scores(net, sites, seed)
        return scores, time.perf_counter() - t0
    s = settings_of(variant)
    fit_cfg = pdl.FitConfig(estimator=s["estimator"], num_samples=s["num_samples"], mode=s["mode"], epochs=s["epochs"],
                            batch_size=s["batch_size"], lr=s["lr"], anneal_epochs=s["anneal_epochs"],
                            kl_weight=s["kl_weight"], seed=seed)
    switch = pdl.SwitchConfig(s["alpha0"], s["form"], s["steepness"], s.get("temperature", False))
    switched = pdl.SwitchedNetwork(net, sites, switch)
    data = fit_data if s["fit_data"] == "holdout" else pretrain_data
    guide, _ = pdl.fit_switches(switched, data, fit_cfg, progress=False)
    scores = guide.means(sites)
    return scores, time.perf_counter() - t0


def measure(scores: dict, net, costs: dict, counts: dict, links, error_data) -> dict:
    """Rank correlation with removal cost per site, and error right after pruning per budget."""
    errors = {}
    for budget, budget_counts in counts.items():
        small = pdl.trim(net, pdl.keep_indices(scores, budget_counts, links), net.input_shape)
        errors[str(budget)] = pdl.evaluate(small, error_data)
    return {"spearman": {site: spearman(scores[site].cpu(), costs[site]) for site in scores}, "error_pct": errors}


def run_ablation(cfg: AblateConfig, results_dir: str | Path = "results", command: str = "") -> dict:
    base = cfg.pipeline(cfg.run_dir, holdout=cfg.holdout, fit_data="holdout")
    train, test = pipeline.load_data(base)
    net = pipeline.pretrain(base, train, test)
    pretrain_data, fit_data = pipeline.split_data(base, train)
    if not cfg.cost_examples < len(test):
        raise ValueError(f"--cost-examples {cfg.cost_examples} leaves no test images for the errors ({len(test)})")
    cost_data = test.take(torch.arange(cfg.cost_examples))
    error_data = test.take(torch.arange(cfg.cost_examples, len(test)))
    folder = base.pretrained_dir / "ablate"
    cost_file = keyed_folder(folder, "costs", {"cost_examples": cfg.cost_examples}) / "costs.pt"
    if not cost_file.exists():
        save_torch(removal_costs(net, net.prunable_layers, cost_data), cost_file)
    costs = load_torch(cost_file)
    links = pdl.input_links(net, net.prunable_layers, net.input_shape)
    counts = {budget: uniform_counts(net, budget, links) for budget in cfg.budgets}
    rows = []
    jobs = list(itertools.product(cfg.variants, cfg.seeds))
    for variant, seed in tqdm(jobs, desc="ablate", disable=not cfg.progress):
        record = keyed_folder(folder, variant, {**settings_of(variant), "seed": seed}) / "result.json"
        if not record.exists():
            scores, seconds = variant_scores(variant, seed, net, pretrain_data, fit_data)
            save_json({"variant": variant, "seed": seed, "settings": settings_of(variant), "fit_seconds": seconds,
                       "scores": {site: v.detach().float().cpu().tolist() for site, v in scores.items()}}, record)
        row = load_json(record)  # the fit is cached; its measures are recomputed for this run's budgets and costs
        scores = {site: torch.tensor(v) for site, v in row["scores"].items()}
        rows.append({**row, **measure(scores, net, costs, counts, links, error_data)})
    result = {"command": command, "config": asdict(cfg), "base": BASE, "folder": str(folder),
              "architectures": {str(b): pdl.format_architecture(c) for b, c in counts.items()},
              "full_error_pct": pdl.evaluate(net, error_data),
              "variants": summarize(rows), "runs": [{k: v for k, v in r.items() if k != "scores"} for r in rows]}
    results_dir = Path(results_dir)
    save_json(result, results_dir / "lenet5_ablation.json")
    save_text(markdown(result), results_dir / "lenet5_ablation.md")
    return result


def _mean_sd(values: list[float]) -> list[float]:
    """Mean and sample sd; nan stays nan (a constant ranking has no rank correlation)."""
    v = torch.tensor(values, dtype=torch.float64)
    return [v.mean().item(), v.std().item() if len(values) > 1 else 0.0]


def summarize(rows: list[dict]) -> dict:
    """Per variant: mean +- sd over seeds of each measure, and the mean Kendall tau over seed pairs."""
    by_variant: dict[str, list[dict]] = {}
    for r in rows:
        by_variant.setdefault(r["variant"], []).append(r)
    summary = {}
    for variant, rs in by_variant.items():
        sites = list(rs[0]["spearman"])
        pairs = list(itertools.combinations(rs, 2))
        summary[variant] = {
            "settings": rs[0]["settings"], "seeds": len(rs),
            "spearman": {site: _mean_sd([r["spearman"][site] for r in rs]) for site in sites},
            "kendall": {site: _mean_sd([kendall_tau(torch.tensor(a["scores"][site]), torch.tensor(b["scores"][site]))
                                        for a, b in pairs])[0] if pairs else None for site in sites},
            "error_pct": {b: _mean_sd([r["error_pct"][b] for r in rs]) for b in rs[0]["error_pct"]},
            "fit_seconds": statistics.mean(r["fit_seconds"] for r in rs),
        }
    return summary


def markdown(result: dict) -> str:
    variants = result["variants"]
    first = next(iter(variants.values()))
    sites = list(first["spearman"])
    budgets = list(first["error_pct"])
    arch = result["architectures"]
    lines = [f"Command: `{result['command']}`. Base fit: {result['base']}. Full network: "
             f"{result['full_error_pct']:.2f}% on the error images.", "",
             "| variant | " + " | ".join(f"Spearman {s}" for s in sites) + " | "
             + " | ".join(f"Kendall {s}" for s in sites) + " | "
             + " | ".join(f"error % at {int(b):,} ({arch[b]})" for b in budgets) + " | fit (s) |",
             "|---" * (1 + 2 * len(sites) + len(budgets) + 1) + "|"]
    for name, v in variants.items():  # nan: a constant ranking (the fit did not move the switches)
        cells = ["no ranking" if math.isnan(v["spearman"][s][0]) else
                 f"{v['spearman'][s][0]:+.2f} ± {v['spearman'][s][1]:.2f}" for s in sites]
        cells += ["—" if v["kendall"][s] is None or math.isnan(v["kendall"][s]) else f"{v['kendall'][s]:.2f}"
                  for s in sites]
        cells += [f"{v['error_pct'][b][0]:.1f} ± {v['error_pct'][b][1]:.1f}" for b in budgets]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {v['fit_seconds']:.0f} |")
    return "\n".join(lines) + "\n"
