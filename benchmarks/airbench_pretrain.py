"""Pretrain the CIFAR-10 testbed network (airbench94, :mod:`pyro_dirichlet.airbench`) on the
CPU, fp32, on the CIFAR-10 JPEG copy: 45,000 training images, 5,000 held out (seed 1) as the
validation split for the studies, test error plain and with level-2 TTA.

    python benchmarks/airbench_pretrain.py [--seed 0] [--epochs 9.9] [--run-dir runs/airbench94-cifar10]

Writes ``<run-dir>/pretrained-<hash>/{config.json, train.ckpt, model.pt, spec.json}`` (resumes
from ``train.ckpt`` after a kill), ``results/airbench94/pretrain.json``, and the committed copy
``--export`` (``models/weights/airbench94-cifar10/``: ``model.pt``, ``spec.json``, ``config.json``,
``SHA256``), which the studies start from.
"""
from __future__ import annotations

import argparse
import platform
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import torch

import pyro_dirichlet as pdl
from pyro_dirichlet.airbench import AirbenchConfig, evaluate_tta, train_airbench
from pyro_dirichlet.io import file_sha256, keyed_folder, save_json, save_text
from pyro_dirichlet.models import build_model

VALIDATION, SPLIT_SEED = 5000, 1


def cpu_name() -> str:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else platform.machine()
    return f"{platform.processor() or platform.machine()} ({isa}, {torch.get_num_threads()} threads)"


def export(folder: Path, out: Path) -> str:
    """Copy the trained network's ``model.pt``, ``spec.json`` and ``config.json`` to ``out`` with
    their SHA-256 in ``SHA256``; returns the model's hash."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("model.pt", "spec.json", "config.json"):
        shutil.copyfile(folder / name, out / name)
    digest = file_sha256(out / "model.pt")
    save_text("".join(f"{file_sha256(out / n)}  {n}\n" for n in ("model.pt", "spec.json", "config.json")), out / "SHA256")
    return digest


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=float, default=AirbenchConfig.epochs)
    p.add_argument("--train-subset", type=int, default=None, help="train on this many images (a smoke run)")
    p.add_argument("--run-dir", default="runs/airbench94-cifar10")
    p.add_argument("--out", default="results/airbench94/pretrain.json")
    p.add_argument("--export", default="models/weights/airbench94-cifar10", help="where the trained network is copied "
                   "(committed); none: no copy")
    a = p.parse_args(argv)
    cfg = AirbenchConfig(epochs=a.epochs, seed=a.seed)
    train, val = pdl.load_cifar10(train=True, download=False).split(VALIDATION, seed=SPLIT_SEED)
    train = train.subset(a.train_subset)
    test = pdl.load_cifar10(train=False, download=False)
    settings = {"model": "airbench94", "data": {"dataset": "cifar10-jpg", "validation": VALIDATION,
                "split_seed": SPLIT_SEED, "train_subset": a.train_subset}, "train": asdict(cfg)}
    folder = keyed_folder(a.run_dir, "pretrained", settings)
    torch.manual_seed(cfg.seed)
    net = build_model("airbench94")
    t0 = time.perf_counter()
    history = train_airbench(net, train, cfg, checkpoint=folder / "train.ckpt")
    wall = time.perf_counter() - t0
    widths = pdl.site_sizes(net)
    spec = {"model": "airbench94", "model_kwargs": {}, "input_shape": list(net.input_shape),
            "kept": {name: list(range(k)) for name, k in widths.items()}, "architecture": pdl.format_architecture(widths),
            "test_error": pdl.evaluate(net, test), "test_error_tta": evaluate_tta(net, test),
            "val_error": pdl.evaluate(net, val), "val_error_tta": evaluate_tta(net, val),
            "macs": pdl.count_macs(net, net.input_shape), "params": sum(p.numel() for p in net.parameters()),
            "train_seconds": sum(h["seconds"] for h in history), "wall_seconds_this_call": wall,
            "cpu": cpu_name(), "train": asdict(cfg), "history": history}
    pdl.save_pruned(net, spec, folder)
    result = {"folder": str(folder), **{k: v for k, v in spec.items() if k != "kept"}}
    if a.export != "none":
        result["export"], result["model_sha256"] = a.export, export(folder, Path(a.export))
    save_json(result, a.out)
    print({k: result[k] for k in ("test_error", "test_error_tta", "val_error", "train_seconds", "cpu")})
    return result


if __name__ == "__main__":
    main()
