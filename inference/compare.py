"""Every criterion in one harness: the LeNet-5 compression curve (``pyro-dirichlet compare``).

One trained LeNet-5-Caffe (the pipeline's ``pretrained-<h>`` folder under ``run_dir``). For
each seed and method the channel scores are computed once, and each (method, budget, seed)
run once; both are cached in ``<pretrained>/compare-<h>/{scores,runs}``, keyed by the
settings that change them (fine-tuning, scoring and fit settings). At each MAC budget
every method keeps the **same per-site counts**: the paper's 5-8-45-15 at 136,825 MACs,
and elsewhere the largest uniform keep fraction ``f`` (``max(1, round(f * K_l))`` in every
site, fc1's input features clamped to 1..16 per kept conv2 filter) that fits the budget. Only *which* channels are kept comes from each method's
scores, so the comparison measures the rankings. Each pruned network is evaluated right
after pruning and after the same fine-tuning (Adam, cosine, ``finetune_epochs``, seed).

Dirichlet methods fit the switches on the training set (``alpha0`` 0.5 and the ``"s"`` switch
form, as the pipeline):
``dirichlet-mean`` (mean, layer by layer), ``dirichlet-mc`` (mc with ``mc_samples``,
layer by layer), ``dirichlet-joint`` (mean, all layers jointly, for ``fit_epochs`` times
the number of layers: the same number of SVI steps as layer by layer). Seeds change the
fit/score randomness, the random scores and the fine-tuning shuffles.
"""
from __future__ import annotations

import copy
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
from tqdm.auto import tqdm

import pyro_dirichlet as pdl
from pyro_dirichlet import criteria
from pyro_dirichlet.io import keyed_folder, load_json, load_torch, save_json, save_text, save_torch
from pyro_dirichlet.models import build_model
from pyro_dirichlet.sites import site_sizes

from . import pipeline

DIRICHLET = {"dirichlet-mean": ("mean", "layerwise"), "dirichlet-mc": ("mc", "layerwise"),
             "dirichlet-joint": ("mean", "joint")}
METHODS = (*criteria.CRITERIA, *DIRICHLET)
BUDGETS = (1_000_000, 500_000, 300_000, 200_000, 136_825, 100_000)
PAPER_ARCH = {136_825: "5-8-45-15"}

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
    seeds: tuple[int, ...] = (0, 1, 2)
    finetune_epochs: int = 2
    score_batches: int = 10  # taylor / fisher: batches of 100 training examples
    group_lasso_strength: float = 1e-4
    group_lasso_epochs: int = 2
    fit_epochs: int = 1  # per stage (per layer in layerwise mode)
    mc_samples: int = 4
    alpha0: float = 0.5
    switch_form: str = "s"  # the Dirichlet methods' switch form (pyro_dirichlet.scale_channels)

    def __post_init__(self):
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; choose from {list(METHODS)}")
        if not self.seeds or self.finetune_epochs < 0 or min(self.budgets, default=1) < 1:
            raise ValueError("need at least one seed, finetune_epochs >= 0 and positive budgets")


def uniform_counts(net: nn.Module, budget: int, links: pdl.pruning.Links) -> dict[str, int]:
    """The largest uniform keep fraction whose zoo network fits ``budget`` MACs."""
    sizes = site_sizes(net)

    def counts(f: float) -> dict[str, int]:
        return pdl.feasible_counts({name: max(1, round(f * k)) for name, k in sizes.items()}, links)

    def macs(f: float) -> int:
        return pdl.count_macs(build_model(net.zoo_name, list(counts(f).values())), net.input_shape)

    if macs(0.0) > budget:
        raise ValueError(f"budget {budget} MACs is below the smallest network ({macs(0.0)} MACs, one channel a layer)")
    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if macs(mid) <= budget else (lo, mid)
    return counts(lo)


def budget_counts(net: nn.Module, budget: int, links: pdl.pruning.Links) -> dict[str, int]:
    sizes = site_sizes(net)
    if budget in PAPER_ARCH and net.zoo_name == "lenet5" and tuple(sizes.values()) == (20, 50, 800, 500):
        return pdl.parse_architecture(PAPER_ARCH[budget], sizes, links=links)
    return uniform_counts(net, budget, links)


def method_scores(cfg: CompareConfig, method: str, seed: int, net: nn.Module, train_data, folder: Path
                  ) -> tuple[dict, nn.Module]:
    """``(scores, network to prune)`` for one method and seed, cached under ``<folder>/scores``."""
    layers = list(net.prunable_layers)
    cache = folder / "scores" / f"{method}-s{seed}.pt"
    if cache.exists():
        state = load_torch(cache)
        if state["net"] is None:
            return state["scores"], net  # trim works on a copy
        retrained = copy.deepcopy(net)
        retrained.load_state_dict(state["net"])
        return state["scores"], retrained
    work = copy.deepcopy(net)
    t0 = time.perf_counter()
    if method in ("l1", "l2"):
        scores = criteria.norm_scores(work, layers, p=int(method[1]))
    elif method == "random":
        scores = criteria.random_scores(work, layers, seed)
    elif method in ("taylor", "fisher"):
        scores = criteria.gradient_scores(work, layers, train_data, method, cfg.score_batches, seed=seed)
    elif method == "data-free":
        scores = criteria.data_free_scores(work, layers, net.input_shape)
    elif method == "group-lasso":
        train_cfg = pdl.TrainConfig(epochs=cfg.group_lasso_epochs, lr=1e-3, weight_decay=5e-4, seed=seed)
        work = criteria.group_lasso_retrain(net, layers, train_data, train_cfg, cfg.group_lasso_strength)
        scores = criteria.norm_scores(work, layers, p=2)
    else:
        estimator, mode = DIRICHLET[method]
        epochs = cfg.fit_epochs * (len(layers) if mode == "joint" else 1)  # as many SVI steps as layerwise
        fit_cfg = pdl.FitConfig(estimator=estimator, mode=mode, num_samples=cfg.mc_samples, epochs=epochs, seed=seed)
        switched = pdl.SwitchedNetwork(work, layers, cfg.alpha0, form=cfg.switch_form)
        guide, _ = pdl.fit_switches(switched, train_data, fit_cfg, checkpoint=cache.with_suffix(".ckpt"),
                                    progress=False)
        scores = {name: (guide.phi(name) / guide.phi(name).sum()).detach().cpu() for name in layers}
        work = net
    seconds = time.perf_counter() - t0
    scores = {name: s.detach().float().cpu() for name, s in scores.items()}
    save_torch({"scores": scores, "seconds": seconds,
                "net": work.state_dict() if method == "group-lasso" else None}, cache)
    return scores, work


def prune_and_finetune(cfg: CompareConfig, net: nn.Module, scores: dict, counts: dict, links: pdl.pruning.Links,
                       seed: int, train_data, test_data) -> dict:
    keep = pdl.keep_indices(scores, counts, links)
    small = pdl.trim(net, keep, net.input_shape)
    pruned_error = pdl.evaluate(small, test_data)
    pdl.train(small, train_data, pdl.TrainConfig(epochs=cfg.finetune_epochs, lr=1e-3, seed=seed), progress=False)
    return {"architecture": pdl.format_architecture(counts), "macs": pdl.count_macs(small, net.input_shape),
            "params": pdl.count_params(small), "error_pruned_pct": pruned_error,
            "error_finetuned_pct": pdl.evaluate(small, test_data)}


def run_compare(cfg: CompareConfig, results_dir: str | Path = "results", command: str = "") -> dict:
    """All runs (each cached as JSON under ``<pretrained>/compare-<h>/runs``, so a re-run
    resumes), then ``lenet5_baselines.json``, ``.md`` and ``.png`` in ``results_dir``."""
    base = cfg.pipeline(cfg.run_dir)
    train_data, test_data = pipeline.load_data(base)
    net = pipeline.pretrain(base, train_data, test_data)
    settings = {k: v for k, v in asdict(cfg).items()
                if k not in ("run_dir", "methods", "budgets", "seeds", "device", "data_root", "progress")}
    folder = keyed_folder(base.pretrained_dir, "compare", settings)
    full = {"method": "full", "budget_macs": None, "architecture": pdl.format_architecture(site_sizes(net)),
            **pdl.count_ops(net, net.input_shape), "params": pdl.count_params(net),
            "error_pruned_pct": pdl.evaluate(net, test_data)}
    full["error_finetuned_pct"] = full["error_pruned_pct"]
    links = pdl.input_links(net, net.prunable_layers, net.input_shape)
    counts = {budget: budget_counts(net, budget, links) for budget in cfg.budgets}
    runs = []
    total = len(cfg.seeds) * len(cfg.methods) * len(cfg.budgets)
    with tqdm(total=total, desc="compare", disable=not cfg.progress) as bar:
        for seed in cfg.seeds:
            for method in cfg.methods:
                scores, prune_from = None, None
                for budget in cfg.budgets:
                    bar.set_postfix_str(f"seed {seed} {method} {budget}")
                    record = folder / "runs" / f"{method}-{budget}-s{seed}.json"
                    if not record.exists():
                        if scores is None:
                            scores, prune_from = method_scores(cfg, method, seed, net, train_data, folder)
                        result = prune_and_finetune(cfg, prune_from, scores, counts[budget], links, seed, train_data,
                                                    test_data)
                        save_json({"method": method, "budget_macs": budget, "seed": seed} | result, record)
                    runs.append(load_json(record))
                    bar.update()
    device = pdl.resolve_device(cfg.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    result = {"device": name, "command": command, "config": asdict(cfg), "folder": str(folder), "full": full, "runs": runs,
              "paper_points": paper_points()}
    results_dir = Path(results_dir)
    save_json(result, results_dir / "lenet5_baselines.json")
    save_text(markdown(result), results_dir / "lenet5_baselines.md")
    plot(result, results_dir / "lenet5_baselines.png")
    return result


def paper_points() -> list[dict]:
    """The supplement's Table 1 points, with MACs, paper FLOPs and params from this project's counter."""
    points = []
    for method, arch, error, stated_flops in PAPER_POINTS:
        small = build_model("lenet5", [int(w) for w in arch.split("-")])
        points.append({"method": method, "architecture": arch, "error_pct": error, "stated_flops": stated_flops,
                       **pdl.count_ops(small, small.input_shape), "params": pdl.count_params(small)})
    return points


def aggregate(runs: list[dict]) -> dict[tuple[str, int], dict]:
    """``{(method, budget): mean and sd over seeds of both errors, plus arch/macs}``."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in runs:
        groups.setdefault((r["method"], r["budget_macs"]), []).append(r)
    table = {}
    for key, rs in groups.items():
        def stats(field_name):
            values = [r[field_name] for r in rs]
            return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)
        table[key] = {"pruned": stats("error_pruned_pct"), "finetuned": stats("error_finetuned_pct"),
                      "architecture": rs[0]["architecture"], "macs": rs[0]["macs"], "seeds": len(rs)}
    return table


def markdown(result: dict) -> str:
    table = aggregate(result["runs"])
    budgets = sorted({b for _, b in table}, reverse=True)
    methods = list(dict.fromkeys(m for m, _ in table))
    full = result["full"]
    lines = [f"Command: `{result['command']}` (device: {result['device']}). Full LeNet-5-Caffe {full['architecture']}: "
             f"{full['error_finetuned_pct']:.2f}% error, {full['macs']:,} MACs.", ""]
    for kind, title in (("finetuned", "after fine-tuning"), ("pruned", "right after pruning (no fine-tuning)")):
        lines += [f"Test error (%) {title}, mean ± sd over seeds:", "",
                  "| method | " + " | ".join(f"{b:,} ({table[(methods[0], b)]['architecture']})" for b in budgets) + " |",
                  "|---" * (len(budgets) + 1) + "|"]
        for m in methods:
            cells = [f"{table[(m, b)][kind][0]:.2f} ± {table[(m, b)][kind][1]:.2f}" for b in budgets]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["Supplement Table 1 points on LeNet-5-Caffe, recounted by this project's counter (paper FLOPs = MACs + "
              "one add per output bias element; stated FLOPs: see PAPER_POINTS):", "",
              "| method | architecture | error (%) | stated FLOPs | MACs (ours) | paper FLOPs (ours) | params (ours) |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {p['method']} | {p['architecture']} | {p['error_pct']} | "
              f"{'—' if p['stated_flops'] is None else format(p['stated_flops'], ',')} | {p['macs']:,} | "
              f"{p['paper_flops']:,} | {p['params']:,} |" for p in result["paper_points"]]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> Path:
    """Test error after fine-tuning against MACs (log axis), one curve per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = aggregate(result["runs"])
    methods = list(dict.fromkeys(m for m, _ in table))
    fig, ax = plt.subplots(figsize=(8, 5))
    for m in methods:
        keys = sorted((k for k in table if k[0] == m), key=lambda k: table[k]["macs"])
        macs = [table[k]["macs"] for k in keys]
        mean = [table[k]["finetuned"][0] for k in keys]
        sd = [table[k]["finetuned"][1] for k in keys]
        style = "-o" if m.startswith("dirichlet") else "--."
        ax.errorbar(macs, mean, yerr=sd, fmt=style, capsize=2, label=m, linewidth=1.2, markersize=4)
    for p in result["paper_points"]:
        ax.plot(p["macs"], p["error_pct"], "k*", markersize=8)
        ax.annotate(p["method"], (p["macs"], p["error_pct"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    full = result["full"]
    ax.axhline(full["error_finetuned_pct"], color="gray", linewidth=0.8, label="full network")
    ax.set_xscale("log")
    ax.set_xlabel("MACs (log)")
    ax.set_ylabel("test error after fine-tuning (%)")
    ax.set_title("LeNet-5-Caffe on MNIST: same counts per budget, each method's own ranking\n(stars: supplement Table 1)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
