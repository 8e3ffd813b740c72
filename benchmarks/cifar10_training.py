"""VGG-16 (or another zoo network) trained on CIFAR-10 with the fast path; writes
``results/vgg16/cifar10_training.json`` (device, command, model, epochs, epoch_seconds,
images_per_second, test_error_pct) and prints a table.

Defaults are the GPU recipe: SGD (momentum 0.9, Nesterov), batch 512, peak lr 0.4,
one-cycle schedule, weight decay 5e-4, label smoothing 0.1, crop+flip on the GPU,
channels_last, bf16 autocast; ``--compile`` adds ``torch.compile``. Epoch time is the
median over the epochs after the first (which includes compilation and warm-up).

    python benchmarks/cifar10_training.py [--epochs 30] [--device cuda] [--compile]
    python benchmarks/cifar10_training.py --device cpu --train-subset 512 --test-subset 256 --epochs 2 --results /tmp/r
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import torch

import pyro_dirichlet as pdl
from pyro_dirichlet.devices import device_name
from pyro_dirichlet.io import save_json
from pyro_dirichlet.models import build_model
from pyro_dirichlet.training import speed_record


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="vgg16")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--lr", type=float, default=0.4)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--train-subset", type=int, default=None)
    ap.add_argument("--test-subset", type=int, default=None)
    ap.add_argument("--results", default="results/vgg16")
    a = ap.parse_args(argv)
    device = pdl.resolve_device(a.device)
    train = pdl.load_cifar10(a.data_root, train=True).subset(a.train_subset).to(device)
    test = pdl.load_cifar10(a.data_root, train=False).subset(a.test_subset).to(device)
    torch.manual_seed(0)
    net = build_model(a.model).to(device)
    cfg = pdl.TrainConfig(epochs=a.epochs, batch_size=a.batch_size, optimizer="sgd", lr=a.lr, weight_decay=5e-4,
                          schedule="onecycle", label_smoothing=0.1, augment=True, channels_last=True,
                          compile=a.compile)
    history = pdl.train(net, train, cfg, progress=True)
    name = device_name(device)
    result = {"device": name, "command": "python " + shlex.join(["benchmarks/cifar10_training.py", *sys.argv[1:]]),
              "model": a.model, **speed_record(history, len(train)), "test_error_pct": pdl.evaluate(net, test),
              "data": "CIFAR-10 (JPEG copy)" if "jpg" in train.name else train.name, "config": cfg.__dict__}
    save_json(result, Path(a.results) / "cifar10_training.json")
    r = result
    print("| model | device | epochs | epoch s | images/s | train s | test error % |\n|---|---|---|---|---|---|---|")
    print(f"| {a.model} | {name} | {r['epochs']} | {r['epoch_seconds']:.2f} | {r['images_per_second']:.0f} | "
          f"{r['total_train_seconds']:.1f} | {r['test_error_pct']:.2f} |")
    return result


if __name__ == "__main__":
    main()
