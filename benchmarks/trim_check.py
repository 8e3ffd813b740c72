"""What trim's self-check costs: ``trim(verify=True)`` (the trimmed network compared with the
masked one on two random inputs) against ``verify=False``, on the zoo's ResNet-56 and VGG-16
(32 x 32) and torchvision's ``resnet18`` and ``mobilenet_v2`` (224 x 224), every prunable
channel group switched, half of every group's channels kept at random. Median of
``--repeats``; writes ``results/speed/trim_check.{json,md}``.

    python benchmarks/trim_check.py
"""
from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch
import torchvision

import pyro_dirichlet as pdl
from pyro_dirichlet.devices import device_name
from pyro_dirichlet.groups import channel_groups
from pyro_dirichlet.io import save_json, save_text
from pyro_dirichlet.models import build_model


def networks():
    yield "resnet56 (zoo)", build_model("resnet56"), (3, 32, 32)
    yield "vgg16 (zoo)", build_model("vgg16"), (3, 32, 32)
    yield "resnet18 (torchvision)", torchvision.models.resnet18(num_classes=1000), (3, 224, 224)
    yield "mobilenet_v2 (torchvision)", torchvision.models.mobilenet_v2(num_classes=1000), (3, 224, 224)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--results", default="results/speed")
    a = ap.parse_args(argv)
    rows = []
    for name, net, shape in networks():
        net.eval()
        groups = [g for g in channel_groups(net, torch.zeros(1, *shape)) if not g.is_output and g.problem is None]
        gen = torch.Generator().manual_seed(0)
        keep = {g.name: sorted(torch.randperm(g.size, generator=gen)[: max(1, g.size // 2)].tolist()) for g in groups}
        pdl.trim(net, keep, shape)  # warm-up
        runs = {False: [], True: []}
        for _ in range(a.repeats):  # interleaved, so that neither setting gets the warmer allocator
            for verify in (False, True):
                t = time.perf_counter()
                pdl.trim(net, keep, shape, verify=verify)
                runs[verify].append(time.perf_counter() - t)
        times = {verify: statistics.median(r) for verify, r in runs.items()}
        rows.append({"network": name, "groups": len(groups), "trim_s": times[False], "trim_verified_s": times[True],
                     "overhead_pct": 100 * (times[True] / times[False] - 1)})
        print(rows[-1], flush=True)
    report = {"device": device_name(torch.device("cpu")), "repeats": a.repeats, "rows": rows,
              "command": shlex.join(["python", "benchmarks/trim_check.py",
                                     *(sys.argv[1:] if argv is None else argv)])}
    lines = [f"trim with and without its self-check ({report['device']}, median of {a.repeats}); half of every "
             "group's channels kept.", "", "| network | groups | trim (s) | trim + check (s) | overhead |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['network']} | {r['groups']} | {r['trim_s']:.3f} | {r['trim_verified_s']:.3f} | "
              f"{r['overhead_pct']:+.1f}% |" for r in rows]
    lines += ["", f"Command: `{report['command']}`."]
    save_json(report, Path(a.results) / "trim_check.json")
    save_text("\n".join(lines) + "\n", Path(a.results) / "trim_check.md")
    print("\n".join(lines))
    return report


if __name__ == "__main__":
    main()
