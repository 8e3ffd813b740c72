"""LeNet-5-Caffe on all of MNIST: the paper's Table 1 setting, on this machine.

Trains LeNet-5-Caffe (20-50-800-500: conv1, conv2, fc1 inputs, fc1 units) once, fits the
switches with ``mean`` and ``mc``, prunes each to 5-8-45-15 and to a 136,825-MAC budget
(5-8-45-15's MACs) chosen from the posteriors, fine-tunes, and writes
``results/lenet5/lenet5_mnist.json`` and ``results/lenet5/lenet5_mnist.md``, with the CPU latency of the full
and each pruned network at batch 1 and 256 (:func:`pyro_dirichlet.latency.latency_ms`, all
measured in this process at the end). Interrupt and re-run to resume (every step resumes
from its run directory).

    python benchmarks/lenet5_mnist.py [--run-dir runs/lenet5-mnist-bench] [--samples 10] [--device auto]
"""
from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import time
from pathlib import Path

import torch

import pyro_dirichlet as pdl
from pyro_dirichlet.devices import device_name
from pyro_dirichlet.inference import paper, pipeline
from pyro_dirichlet.latency import latency_ms
from pyro_dirichlet.io import save_json, save_text

BUDGET = 136_825  # MACs of 5-8-45-15 on LeNet-5-Caffe


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", default="runs/lenet5-mnist-bench")
    ap.add_argument("--results", default="results/lenet5")
    ap.add_argument("--samples", type=int, default=10, help="mc particles per step")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--data-root", default=None)
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    base = pipeline.PipelineConfig(run_dir=a.run_dir, device=a.device, data_root=a.data_root)
    train, test = pipeline.load_data(base)
    net = pipeline.pretrain(base, train, test)
    baseline = pipeline.baseline(base)
    runs, networks = [], {"full": net}
    for fit_cfg in (pdl.FitConfig(estimator="mean"), pdl.FitConfig(estimator="mc", num_samples=a.samples)):
        cfg = dataclasses.replace(base, fit=fit_cfg)
        idata = pipeline.fit(cfg, net, train)
        for target in (pipeline.Target(arch="5-8-45-15"), pipeline.Target(budget_macs=BUDGET)):
            cfg = dataclasses.replace(cfg, target=target)
            pruned = pipeline.prune(cfg, net, idata, test)
            result = pipeline.finetune(cfg, pruned, train, test)
            networks[str(cfg.finetune_dir)] = pruned
            method = f"dirichlet-{fit_cfg.estimator}" + (f" (S={fit_cfg.num_samples})" if fit_cfg.estimator == "mc" else "")
            runs.append({"method": method, "target": target.tag, "folder": str(cfg.finetune_dir), **{k: result[k] for k in (
                "architecture", "error_pruned_pct", "error_pct", "macs", "paper_flops", "params", "fit_seconds")}})
    device = device_name(train.device)
    latency = {name: {f"cpu_b{b}_ms": latency_ms(small.cpu(), small.input_shape, b) for b in (1, 256)}
               for name, small in networks.items()}
    baseline["latency"] = latency["full"]
    for r in runs:
        r["latency"] = latency[r["folder"]]
    report = {"model": "lenet5 (LeNet-5-Caffe)", "dataset": "mnist", "device": device,
              "command": "python " + " ".join(shlex.quote(x) for x in [sys.argv[0], *(argv or sys.argv[1:])]),
              "wall_seconds": time.perf_counter() - t0, "baseline": baseline, "runs": runs,
              "config": {"pretrain": dataclasses.asdict(base.pretrain), "finetune": dataclasses.asdict(base.finetune),
                         **base.switch_used.settings(), "fit_epochs": base.fit.epochs}}
    out = Path(a.results)
    save_json(report, out / "lenet5_mnist.json")
    save_text(markdown(report), out / "lenet5_mnist.md")
    print(markdown(report))


def markdown(report: dict) -> str:
    b = report["baseline"]
    lines = [
        f"LeNet-5-Caffe on MNIST (60,000 train / 10,000 test), {report['device']}. MACs = multiply-accumulates; "
        "paper FLOPs = MACs + one add per output bias element (the convention of the literature's LeNet-5 tables).", "",
        "| method | target | architecture | error before fine-tuning (%) | error (%) | MACs | paper FLOPs | params | fit (s) |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| full network (ours) | — | 20-50-800-500 | — | {b['error_pct']:.2f} | {b['macs']:,} | {b['paper_flops']:,} | "
        f"{b['params']:,} | — |",
    ]
    for r in report["runs"]:
        lines.append(f"| {r['method']} | {r['target']} | {r['architecture']} | {r['error_pruned_pct']:.2f} | "
                     f"{r['error_pct']:.2f} | {r['macs']:,} | {r['paper_flops']:,} | {r['params']:,} | {r['fit_seconds']:.0f} |")
    for name, arch, err, flops in paper.LENET5_ROWS:
        lines.append(f"| {name} | — | {arch} | — | {err} | — | {flops} | — | — |")
    lines += ["", f"CPU latency ({torch.get_num_threads()} threads, median of 50 forward passes after 10 warm-up "
              "passes, one process; ms):", "",
              "| network | architecture | MACs | batch 1 | batch 256 | speed-up at 256 |", "|---|---|---|---|---|---|",
              f"| full | 20-50-800-500 | {b['macs']:,} | {b['latency']['cpu_b1_ms']:.3f} | "
              f"{b['latency']['cpu_b256_ms']:.2f} | 1.0x |"]
    for r in report["runs"]:
        speedup = b["latency"]["cpu_b256_ms"] / r["latency"]["cpu_b256_ms"]
        lines.append(f"| {r['method']} {r['target']} | {r['architecture']} | {r['macs']:,} | "
                     f"{r['latency']['cpu_b1_ms']:.3f} | {r['latency']['cpu_b256_ms']:.2f} | {speedup:.1f}x |")
    lines += ["", f"Command: `{report['command']}` ({report['wall_seconds'] / 60:.1f} min wall)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
