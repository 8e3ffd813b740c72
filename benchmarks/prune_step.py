"""One prune step (links, MAC-budget allocation, keep indices, trim with its self-check) with the
dependency graph built once per network (``pyro_dirichlet.groups.dependency_graph``) against a
graph traced anew by every call (``groups.uncached()``, as before), in one process. Each
repetition starts from a fresh copy of the network, so the shared graph is built inside the
step. Median of ``--repeats``; writes ``results/speed/prune_step.{json,md}``.

    python benchmarks/prune_step.py
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch
import torchvision

import pyro_dirichlet as pdl
from pyro_dirichlet import groups
from pyro_dirichlet.devices import device_name
from pyro_dirichlet.io import save_json, save_text
from pyro_dirichlet.models import build_model


def networks():
    lenet = build_model("lenet5")
    yield "lenet5 (zoo)", lenet, ["conv1", "conv2", "fc1:in", "fc1"], (1, 28, 28)
    for name in ("resnet56", "vgg16"):
        net = build_model(name)
        yield f"{name} (zoo)", net, list(net.prunable_layers), (3, 32, 32)
    resnet = torchvision.models.resnet18(num_classes=10)
    x = torch.zeros(1, 3, 32, 32)
    yield "resnet18 (torchvision)", resnet, [g.name for g in pdl.channel_groups(resnet, x)
                                             if not g.is_output and g.problem is None], (3, 32, 32)


def prune_step(net, sizes: dict[str, int], shape) -> int:
    """Trace count of one step: links, allocation to half the MACs and half the parameters, keep
    indices, trim."""
    builds = [0]
    build = groups._build_graph

    def counted(*args):
        builds[0] += 1
        return build(*args)

    groups._build_graph = counted
    try:
        gen = torch.Generator().manual_seed(0)
        scores = {s: torch.rand(k, generator=gen) for s, k in sizes.items()}
        links = pdl.input_links(net, list(scores), shape)
        counts = pdl.counts_for_budget(net, scores, pdl.count_macs(net, shape) // 2, shape, links=links,
                                       budget_params=pdl.count_params(net) // 2)
        pdl.trim(net, pdl.keep_indices(scores, counts, links), shape)
    finally:
        groups._build_graph = build
    return builds[0]


def timed(net, sizes: dict[str, int], shape, cached: bool) -> tuple[float, int]:
    fresh = copy.deepcopy(net)
    with contextlib.nullcontext() if cached else groups.uncached():
        t0 = time.perf_counter()
        builds = prune_step(fresh, sizes, shape)
    return time.perf_counter() - t0, builds


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--results", default="results/speed")
    a = ap.parse_args(argv)
    rows = []
    for name, net, sites, shape in networks():
        net.eval()
        sizes = pdl.SwitchedNetwork(net, sites, example_inputs=torch.zeros(1, *shape)).sizes
        timed(net, sizes, shape, True)  # warm-up
        runs = {True: [], False: []}
        for _ in range(a.repeats):  # interleaved, so drift on the machine hits both alike
            for cached in (False, True):
                runs[cached].append(timed(net, sizes, shape, cached))
        before, traced_before = statistics.median(t for t, _ in runs[False]), runs[False][0][1]
        after, traced_after = statistics.median(t for t, _ in runs[True]), runs[True][0][1]
        rows.append({"network": name, "sites": len(sites), "seconds_traced_each_call": before,
                     "traces_each_call": traced_before, "seconds_graph_once": after, "traces_graph_once": traced_after,
                     "speedup": before / after})
        print(rows[-1], flush=True)
    report = {"device": device_name(torch.device("cpu")), "repeats": a.repeats, "rows": rows,
              "command": "python " + " ".join(shlex.quote(x) for x in [sys.argv[0], *(argv or sys.argv[1:])])}
    lines = [f"One prune step ({report['device']}, median of {a.repeats}; command: `{report['command']}`): input links, "
             "allocation to half the MACs and half the parameters, keep indices, trim with its self-check; the "
             "two variants interleaved after a warm-up.", "",
             "| network | sites | graph traced by every call (s) | traces | graph built once (s) | traces | speed-up |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['network']} | {r['sites']} | {r['seconds_traced_each_call']:.3f} | {r['traces_each_call']} | "
              f"{r['seconds_graph_once']:.3f} | {r['traces_graph_once']} | {r['speedup']:.2f}x |" for r in rows]
    save_json(report, Path(a.results) / "prune_step.json")
    save_text("\n".join(lines) + "\n", Path(a.results) / "prune_step.md")
    print("\n".join(lines))
    return report


if __name__ == "__main__":
    main()
