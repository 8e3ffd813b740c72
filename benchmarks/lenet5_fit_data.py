"""How much data the switch fit needs: LeNet-5-Caffe's switches fitted on random subsets of
MNIST's training set, 1 and 3 epochs per layer (``mean``, layer by layer, the pipeline's other
settings), three seeds each (the seed draws the subset and the fit's batches), each posterior
pruned to 5-8-45-15 and evaluated before fine-tuning, and ranked against the full fit (all
60,000 images, 3 epochs: the pipeline's default; seed 0) by Spearman's rank correlation per
layer. Writes ``results/archive/lenet5_fit_data.{json,md}``.

It sizes the fit of the GPU study (``benchmarks/cifar10_network.py --fit-subset``), where the
switch fit is as large a cost as the training.

    python benchmarks/lenet5_fit_data.py [--run-dir runs/lenet5-mnist]   # pretrains there if needed
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

import pyro_dirichlet as pdl
from pyro_dirichlet.devices import device_name
from pyro_dirichlet.diagnostics import spearman
from pyro_dirichlet.inference import pipeline
from pyro_dirichlet.io import save_json, save_text

ARCH = "5-8-45-15"


def fit_means(cfg: pipeline.PipelineConfig, net, data, epochs: int, seed: int) -> tuple[dict, float]:
    """``({site: posterior mean (K,)}, seconds)`` of one layer-by-layer ``mean`` fit."""
    switched = pdl.SwitchedNetwork(net, net.prunable_layers, cfg.switch)
    t0 = time.perf_counter()
    fit = dataclasses.replace(cfg.fit, epochs=epochs, seed=seed)
    guide, _ = pdl.fit_switches(switched, data, fit, progress=False)
    seconds = time.perf_counter() - t0
    return guide.means(net.prunable_layers), seconds


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", default="runs/lenet5-mnist")
    ap.add_argument("--subsets", default="60000,10000,5000,2000")
    ap.add_argument("--epochs", default="3,1", help="per layer; the first subset's first, seed 0, is the reference")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--results", default="results/archive")
    a = ap.parse_args(argv)
    cfg = pipeline.PipelineConfig(run_dir=a.run_dir, device="cpu", progress=False)
    train, test = pipeline.load_data(cfg)
    net = pipeline.pretrain(cfg, train, test)
    sizes = pdl.site_sizes(net)
    counts = pdl.parse_architecture(ARCH, sizes)
    links = pdl.input_links(net, list(sizes), net.input_shape)
    rows, reference = [], None
    for n in (int(x) for x in a.subsets.split(",")):
        for epochs in (int(x) for x in a.epochs.split(",")):
            for seed in (int(x) for x in a.seeds.split(",")):
                means, seconds = fit_means(cfg, net, train.subset(n, seed=seed), epochs, seed)
                reference = reference or means
                small = pdl.trim(net, pdl.keep_indices(means, counts, links), net.input_shape)
                rows.append({"images": min(n, len(train)), "epochs_per_layer": epochs, "seed": seed,
                             "fit_seconds": seconds, "error_pruned_pct": pdl.evaluate(small, test),
                             "spearman": {site: spearman(means[site], reference[site]) for site in sizes}})
                print(rows[-1], flush=True)
    report = {"command": "python " + shlex.join(["benchmarks/lenet5_fit_data.py", *(argv or sys.argv[1:])]),
              "architecture": ARCH, "fit": dataclasses.asdict(cfg.fit), **cfg.switch_used.settings(),
              "device": device_name(torch.device("cpu")), "rows": rows}
    out = Path(a.results)
    save_json(report, out / "lenet5_fit_data.json")
    lines = [f"LeNet-5-Caffe, switches fitted on random MNIST subsets (`mean`, layer by layer), pruned to {ARCH}, "
             "error before fine-tuning (mean ± sd over the seeds); Spearman's rho against the posterior means of "
             "the first setting's seed 0 (mean over the seeds).", "",
             "| images | epochs per layer | fit s | error pruned (%) | " + " | ".join(f"rho {s}" for s in sizes) + " |",
             "|---|---|---|---|" + "---|" * len(sizes)]
    for (n, epochs), group in itertools.groupby(rows, key=lambda r: (r["images"], r["epochs_per_layer"])):
        group = list(group)
        errors = torch.tensor([r["error_pruned_pct"] for r in group])
        rho = {s: statistics.mean(r["spearman"][s] for r in group) for s in sizes}
        lines.append(f"| {n:,} | {epochs} | {statistics.mean(r['fit_seconds'] for r in group):.1f} | "
                     f"{errors.mean():.2f} ± {errors.std():.2f} | " + " | ".join(f"{rho[s]:.3f}" for s in sizes) + " |")
    lines += ["", f"Command: `{report['command']}`"]
    save_text("\n".join(lines) + "\n", out / "lenet5_fit_data.md")
    print("\n".join(lines))
    return report


if __name__ == "__main__":
    main()
