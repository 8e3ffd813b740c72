"""How long choosing keep counts for a MAC budget takes (``counts_for_budget``), on torchvision
``resnet18`` and ``mobilenet_v2`` (224 x 224 inputs) with every prunable channel group
switched, at half the full network's MACs.

Times the default counter (:func:`pyro_dirichlet.counting.mac_model`: per-layer MACs scaled by
the kept channels) against trimming and counting the network at every evaluation (the
previous default), and checks that both pick the same counts. Prints a table and writes
``results/speed/budget_speed.json``.

    .venv/bin/python benchmarks/budget_speed.py
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torchvision

import pyro_dirichlet as pdl
from pyro_dirichlet.devices import device_name
from pyro_dirichlet.io import save_json
from pyro_dirichlet.groups import channel_groups

SHAPE = (3, 224, 224)


def by_trimming(net, scores):
    def macs_of(counts):
        return pdl.count_macs(pdl.trim(net, pdl.keep_indices(scores, counts), SHAPE), SHAPE)

    return macs_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results/speed")
    parser.add_argument("--skip-trimming", action="store_true", help="time the default counter only")
    args = parser.parse_args()
    rows = []
    for name in ("resnet18", "mobilenet_v2"):
        net = getattr(torchvision.models, name)(num_classes=1000).eval()
        example = torch.zeros(1, *SHAPE)
        sites = [g.name for g in channel_groups(net, example) if not g.is_output and g.problem is None]
        switched = pdl.SwitchedNetwork(net, sites, example_inputs=example)
        gen = torch.Generator().manual_seed(0)
        scores = {s: torch.rand(k, generator=gen) for s, k in switched.sizes.items()}
        budget = pdl.count_macs(net, SHAPE) // 2
        t0 = time.perf_counter()
        counts = pdl.counts_for_budget(net, scores, budget, SHAPE)
        fast = time.perf_counter() - t0
        row = {"network": name, "groups": len(sites), "budget_macs": budget, "seconds": round(fast, 3),
               "macs": pdl.count_macs(pdl.trim(net, pdl.keep_indices(scores, counts), SHAPE), SHAPE)}
        if not args.skip_trimming:
            t0 = time.perf_counter()
            slow_counts = pdl.counts_for_budget(net, scores, budget, SHAPE, macs_of=by_trimming(net, scores))
            row["seconds_trimming"] = round(time.perf_counter() - t0, 3)
            row["same_counts"] = slow_counts == counts
        rows.append(row)
        print(json.dumps(row))
    result = {"device": device_name(torch.device("cpu")), "input_shape": list(SHAPE), "rows": rows}
    save_json(result, Path(args.results) / "budget_speed.json")
    print("\n| network | groups | budget (MACs) | kept (MACs) | seconds | seconds, trimming each time | same counts |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['network']} | {r['groups']} | {r['budget_macs']:,} | {r['macs']:,} | {r['seconds']} | "
              f"{r.get('seconds_trimming', '—')} | {r.get('same_counts', '—')} |")


if __name__ == "__main__":
    main()
