"""Why ``dirichlet-mean-every-group`` failed on ResNet-56: the budget's order, not the posterior.

Reads the study's cached every-group fit (``benchmarks/cifar10_network.py --methods
dirichlet-mean-every-group``: posterior means of every channel group, the residual streams
included), and allocates the same 50M-MAC budget twice: per MAC of a channel (the study's
order for Dirichlet scores) and by ``K E[s]`` alone. For each: the per-group counts, the MACs
one channel of each stream group costs, and the test error right after pruning (no
fine-tuning). Writes ``results/archive/cifar10_resnet56_every_group_order.{json,md}``.

    python benchmarks/every_group_order.py --pretrained ../shared/pretrained/resnet56-cifar10/pretrained-73bd612209
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import pyro_dirichlet as pdl
from pyro_dirichlet.inference import pipeline
from pyro_dirichlet.io import save_json, save_text

STREAMS = ("conv", "stage2.0.conv2", "stage3.0.conv2")  # the three residual streams' groups


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pretrained", required=True)
    ap.add_argument("--run-dir", default="runs/resnet56-cifar10-study")
    ap.add_argument("--budget-macs", type=int, default=50_000_000)
    ap.add_argument("--results", default="results/archive")
    a = ap.parse_args(argv)
    base = pipeline.adopt_pretrained(pipeline.PipelineConfig(run_dir=a.run_dir, model="resnet56", target=None,
                                                             progress=False), a.pretrained)
    _, test = pipeline.load_data(base)
    net = pdl.load_pruned(base.pretrained_dir)[0]  # adopted: complete
    fits = sorted(base.pretrained_dir.glob("fit-mean-every-group-*/posterior.nc"))
    if not fits:
        sys.exit(f"no every-group fit under {base.pretrained_dir}: run benchmarks/cifar10_network.py --methods "
                 "dirichlet-mean-every-group first")
    scores = pdl.posterior_means(pdl.load_idata(fits[0]))
    sizes = {site: len(s) for site, s in scores.items()}
    macs_of = pdl.mac_model(net, list(scores))
    full = macs_of(sizes)
    channel_macs = {site: full - macs_of({**sizes, site: sizes[site] - 1}) for site in STREAMS}
    rows = []
    for order, per_mac in (("per MAC (the study's)", True), ("K E[s] alone", False)):
        counts = pdl.counts_for_budget(net, scores, a.budget_macs, net.input_shape, per_mac=per_mac)
        small, _, measured = pipeline.prune_to(net, scores, counts, None, test)
        rows.append({"order": order, "per_mac": per_mac, "streams": {s: counts[s] for s in STREAMS},
                     "inner_mean_kept": sum(c for s, c in counts.items() if s not in STREAMS)
                     / sum(sizes[s] for s in counts if s not in STREAMS), **measured})
        print(rows[-1], flush=True)
    report = {"fit": str(fits[0].parent), "budget_macs": a.budget_macs, "full_macs": full,
              "stream_channel_macs": channel_macs,
              "stream_k_mean": {s: [round(float(len(scores[s]) * scores[s].min()), 3),
                                    round(float(len(scores[s]) * scores[s].max()), 3)] for s in STREAMS},
              "rows": rows, "command": "python " + " ".join(shlex.quote(x) for x in [sys.argv[0], *sys.argv[1:]])}
    lines = [f"ResNet-56 every-group posterior ({report['fit']}), budget {a.budget_macs:,} MACs; error right after "
             "pruning, 10,000 test images, no fine-tuning. Command: `" + report["command"] + "`.", "",
             "| order | streams kept (stage 1 / 2 / 3 of 16 / 32 / 64) | inner channels kept | MACs | error % |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['order']} | {' / '.join(str(r['streams'][s]) for s in STREAMS)} | {r['inner_mean_kept']:.0%} | "
              f"{r['macs']:,} | {r['error_pct']:.2f} |" for r in rows]
    lines += ["", "MACs one channel of each stream costs: " + ", ".join(f"{s} {m:,}" for s, m in channel_macs.items())
              + "; K E[s] of the streams' channels (min, max): " + ", ".join(
                  f"{s} {v[0]}-{v[1]}" for s, v in report["stream_k_mean"].items()) + "."]
    save_json(report, Path(a.results) / "cifar10_resnet56_every_group_order.json")
    save_text("\n".join(lines) + "\n", Path(a.results) / "cifar10_resnet56_every_group_order.md")
    print("\n".join(lines))
    return report


if __name__ == "__main__":
    main()
