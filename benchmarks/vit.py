"""A small ViT on CIFAR-10 (or MNIST), pruned by heads and MLP units to about half its MACs:
Dirichlet vs Torch-Pruning's magnitude and Taylor importance, the same budget and fine-tuning.

A timm ``VisionTransformer`` (patch 4: 64 tokens on CIFAR-10's 32x32, 49 on MNIST's 28x28, and
a class token; width 64, 4 blocks of 4 heads, MLP 128) is trained here; every block's heads
(``blocks.i.attn:heads``, K = 4) and MLP units (``blocks.i.mlp.fc1``, K = 128) are the switch
sites. Each method's scores go through the same allocation to half the full MACs (attention
products included; ``ALLOCATIONS``: ``counts_for_budget`` per MAC and by score, and one shared
architecture, where the first form is also fitted site by site with the earlier sites pruned,
``pdl.fit_sequential``), ``trim`` (checked against the masked network) and fine-tuning; the residual
stream (LayerNorm over its channels) is not pruned by any method. Writes
``vit_<dataset>.json`` / ``.md`` and the forest plot of ``--forest-site``'s heads in
``--results``; every step resumes from ``--run-dir``.

    python benchmarks/vit.py --dataset cifar10 --pretrain-epochs 30 --finetune-epochs 3
    python benchmarks/vit.py --dataset mnist --pretrain-epochs 8 --finetune-epochs 1
    python benchmarks/vit.py --depth 1 --train-subset 512 --test-subset 256 --pretrain-epochs 1 \\
        --fit-epochs 1 --finetune-epochs 1 --run-dir /tmp/v --results /tmp/r   # a smoke run
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
from pyro_dirichlet.devices import resolve_device, device_name
from pyro_dirichlet.inference import pipeline
from pyro_dirichlet.io import complete, load_json, load_torch, save_json, save_text, save_torch
from pyro_dirichlet.allocations import uniform_counts as uniform_share
from pyro_dirichlet.latency import latency_ms

sys.path.insert(0, str(Path(__file__).parent))
from vit_forms import forms_report  # noqa: E402
from vit_steps import after, dirichlet_scores, finetune_cfg, finetuned, sequential_scores, switch_config  # noqa: E402

BASELINES = ("tp-magnitude", "tp-taylor", "random")
ALLOCATIONS = ("per-mac", "by-score", "uniform")  # counts_for_budget per MAC (the default) and by score alone;
# one shared architecture (uniform_counts)


SHAPES = {"cifar10": (3, 32, 32), "mnist": (1, 28, 28)}


def build_vit(shape: tuple[int, int, int], depth: int, dim: int, heads: int, mlp: int):
    import timm  # an optional extra: pip install .[timm]

    net = timm.models.VisionTransformer(img_size=shape[1], patch_size=4, in_chans=shape[0], num_classes=10,
                                        embed_dim=dim, depth=depth, num_heads=heads, mlp_ratio=mlp / dim,
                                        qkv_bias=True)
    net.input_shape = shape
    return net


def load(dataset: str, root, train: bool):
    return (pdl.load_cifar10 if dataset == "cifar10" else pdl.load_mnist)(root, train=train, download=False)


def sites_of(net) -> list[str]:
    blocks = range(len(net.blocks))
    return [f"blocks.{i}.attn:heads" for i in blocks] + [f"blocks.{i}.mlp.fc1" for i in blocks]


def uniform_counts(net, sites: list[str], budget: int) -> dict[str, int]:
    """The same keep share of every site (heads and units, at least one), the largest whose MACs fit
    ``budget``: one architecture for every method, so that only their rankings differ."""
    return uniform_share(net, pdl.site_sizes(net, sites), budget, min_keep=0.0)


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="mnist", choices=list(SHAPES))
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--mlp", type=int, default=128)
    ap.add_argument("--pretrain-epochs", type=int, default=8)
    ap.add_argument("--fit-epochs", type=int, default=3, help="per stage: per site layer by layer, all at once joint")
    ap.add_argument("--fit-mode", default="layerwise", choices=pdl.fit.MODES)
    ap.add_argument("--estimator", default="mean", choices=pdl.fit.ESTIMATORS)
    ap.add_argument("--num-samples", type=int, default=pdl.FitConfig.num_samples, help="Monte-Carlo particles (mc)")
    ap.add_argument("--fit-subset", type=int, default=10_000)
    ap.add_argument("--finetune-epochs", type=int, default=1)
    ap.add_argument("--finetune-seeds", type=lambda v: [int(x) for x in v.split(",")], default=[1],
                    help="fine-tune every network with each of these seeds (comma-separated) and report the mean")
    ap.add_argument("--rows", type=lambda v: v.split(","), default=None,
                    help="only these rows of the main study, allocation:method (comma-separated), e.g. "
                         "by-score:tp-magnitude")
    ap.add_argument("--sequential-counts-of", default=None,
                    help="the by-score sequential row's architecture: this method's by-score one (e.g. tp-magnitude, "
                         "to compare rankings at its counts; default: the layer-by-layer fit of the same form)")
    ap.add_argument("--budget", type=float, default=0.5, help="share of the full network's MACs")
    ap.add_argument("--forest-site", default="blocks.1.attn:heads")
    ap.add_argument("--switch-forms", default="rKs,s",
                    help="the Dirichlet variants, by how a switch scales its channel: rKs, r K s with r = --budget "
                         "(the factors sum to the kept count; results/archive/vit_cifar10_forms.md), and the library's "
                         f"default s; any of {pdl.switch_config.FORMS}; the first one's heads are plotted")
    ap.add_argument("--alpha0", type=float, default=None, help="the switch prior (default: the library's)")
    ap.add_argument("--forms", default=None, help="only compare these switch forms (e.g. s,Ks,gate,norm) at one "
                    "shared architecture before fine-tuning: vit_<dataset>_forms.{json,md}")
    ap.add_argument("--train-subset", type=int, default=None)
    ap.add_argument("--test-subset", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--run-dir", default=None, help="default: runs/vit-<dataset>")
    ap.add_argument("--results", default="results/vit")
    return ap.parse_args(argv)


def pretrain_cfg(a) -> pdl.TrainConfig:
    return pdl.TrainConfig(epochs=a.pretrain_epochs, batch_size=128, lr=1e-3, schedule="onecycle",
                           augment=a.dataset == "cifar10")


def main(argv: list[str] | None = None) -> None:
    a = parse(argv)
    t0 = time.perf_counter()
    device = resolve_device(a.device)
    train = load(a.dataset, a.data_root, True).subset(a.train_subset).to(device)
    test = load(a.dataset, a.data_root, False).subset(a.test_subset).to(device)
    settings = {k: getattr(a, k) for k in ("dataset", "depth", "dim", "heads", "mlp", "pretrain_epochs", "train_subset")}
    run = pdl.io.keyed_folder(a.run_dir or f"runs/vit-{a.dataset}", "vit", settings)
    torch.manual_seed(0)
    net = build_vit(SHAPES[a.dataset], a.depth, a.dim, a.heads, a.mlp).to(device)
    seconds = {}
    if complete(run, "model.pt"):
        net.load_state_dict(load_torch(run / "model.pt", device))
    else:
        start = time.perf_counter()
        pdl.train(net, train, pretrain_cfg(a), checkpoint=run / "train.ckpt", progress=False)
        save_torch(net.state_dict(), run / "model.pt")
        save_json({"seconds": time.perf_counter() - start}, run / "pretrain.json")
    seconds["pretrain_per_epoch"] = load_json(run / "pretrain.json")["seconds"] / max(a.pretrain_epochs, 1)
    net.eval()
    sites = sites_of(net)
    full = {"error_pct": pdl.evaluate(net, test), **pdl.count_ops(net), "params": pdl.count_params(net)}
    budget = int(a.budget * full["macs"])
    fit_data = train.subset(a.fit_subset, seed=1)

    fit = pdl.FitConfig(estimator=a.estimator, num_samples=a.num_samples, epochs=a.fit_epochs, mode=a.fit_mode)
    if a.forms:
        return forms_report(a, net, sites, train, fit_data, fit, run, test, full, uniform_counts(net, sites, budget))
    guides, scores, switches = {}, {}, {}
    for form in a.switch_forms.split(","):
        switch = switch_config(a, form)
        name = f"dirichlet-{fit.estimator}" + ("" if switch.form == "s" else f"-{switch.form}") + (  # s: the rows' first name
            "" if switch.alpha0 == pdl.SwitchConfig().alpha0 else f"-a{switch.alpha0:g}") + (
            "" if fit.mode == "layerwise" else f"-{fit.mode}")
        guides[name], scores[name], seconds[name] = dirichlet_scores(net, sites, fit_data, fit, switch, run)
        switches[name] = switch.settings()
    dirichlet = next(iter(guides))  # the forest plot's
    for name in BASELINES:
        start = time.perf_counter()
        scores[name] = pdl.CRITERIA[name](net, sites, fit_data, seed=0)
        seconds[name] = time.perf_counter() - start

    runs, networks = [], {"full": net}
    shared = uniform_counts(net, sites, budget)
    # the sequential fit needs its counts first: the shared ones, or a method's by score (its own form's by default)
    sequential, counts_of = f"{dirichlet}-sequential", a.sequential_counts_of or dirichlet
    if counts_of not in scores:
        raise SystemExit(f"--sequential-counts-of {counts_of}: no such method; the methods are {', '.join(scores)}")
    sequential_counts = {"uniform": shared, "by-score": pdl.counts_for_budget(net, scores[counts_of], budget,
                                                                               per_mac=False)}
    rows = [(allocation, name) for allocation in ALLOCATIONS for name in [*scores, sequential]
            if name != sequential or allocation in sequential_counts]
    if unknown := set(a.rows or []) - {f"{allocation}:{name}" for allocation, name in rows}:
        raise SystemExit(f"--rows {','.join(sorted(unknown))}: no such row; the rows are "
                         + ", ".join(f"{allocation}:{name}" for allocation, name in rows))
    for allocation, name in (r for r in rows if not a.rows or f"{r[0]}:{r[1]}" in a.rows):
        if name == sequential:
            counts = sequential_counts[allocation]
            ranking, score_seconds = sequential_scores(net, sites, counts, fit_data, fit,
                                                       switch_config(a, a.switch_forms.split(",")[0]), run)
            seconds[f"{name} ({allocation})"] = score_seconds
        else:
            counts = shared if allocation == "uniform" else pdl.counts_for_budget(
                net, scores[name], budget, per_mac=allocation == "per-mac")
            ranking, score_seconds = scores[name], seconds[name]
        _, keep, pruned = pipeline.prune_to(net, ranking, counts, None, test)
        tuned, networks[(allocation, name)] = finetuned(a, net, ranking, counts, train, test, run)
        runs.append({"method": name, "allocation": allocation, "counts": counts,
                     "heads_kept": {k: keep[k] for k in sites if k.endswith(":heads")},
                     "error_pruned_pct": pruned["error_pct"], **tuned, **{k: pruned[k] for k in ("macs", "params")},
                     "score_seconds": score_seconds})
    latency = {name: {f"cpu_b{b}_ms": latency_ms(m.cpu(), m.input_shape, b) for b in (1, 256)}
               for name, m in networks.items()}
    full["latency"] = latency["full"]
    for r in runs:
        r["latency"] = latency[(r["allocation"], r["method"])]
    out = Path(a.results)
    out.mkdir(parents=True, exist_ok=True)
    idata = pdl.posterior_idata(guides[dirichlet], num_draws=1000, seed=0)
    forest = pdl.posterior.plot_forest(idata, a.forest_site, out / f"vit_{a.dataset}_forest_heads.png")
    heads = pdl.summarize(idata)
    heads = heads[heads.index.str.startswith(a.forest_site)]
    report = {"model": f"timm VisionTransformer (patch 4, width {a.dim}, depth {a.depth}, {a.heads} heads, MLP {a.mlp})",
              "dataset": a.dataset, "device": device_name(device), "threads": torch.get_num_threads(),
              "command": "python " + shlex.join(["benchmarks/vit.py", *(sys.argv[1:] if argv is None else argv)]),
              "wall_seconds": time.perf_counter() - t0, "budget_macs": budget, "full": full, "runs": runs,
              "seconds": seconds, "forest": {"site": a.forest_site, "file": forest.name,
                                             "mean": heads["mean"].round(4).tolist()},
              "config": {"pretrain": dataclasses.asdict(pretrain_cfg(a)), "finetune": dataclasses.asdict(finetune_cfg(a)),
                         "fit": dataclasses.asdict(fit), "switches": switches, "sites": sites,
                         "fit_subset": a.fit_subset, "train_subset": a.train_subset, "test_subset": a.test_subset,
                         "finetune_seeds": a.finetune_seeds, "rows": a.rows,
                         "sequential_counts_of": counts_of}}
    save_json(report, out / f"vit_{a.dataset}.json")
    save_text(markdown(report), out / f"vit_{a.dataset}.md")
    print(markdown(report))


def markdown(report: dict) -> str:
    f = report["full"]
    lines = [f"{report['model']} on {report['dataset']}, {report['device']}. Budget: "
             f"{report['budget_macs']:,} MACs (attention products included), heads and MLP units of every block.", "",
             "Allocation `per-mac`: each method's scores through `counts_for_budget` (the library's default: "
             "score per MAC, floor 10% of a site); `by-score`: the same by normalised score alone; `uniform`: one "
             "architecture for every method (the same keep share of every site), so only the rankings differ; "
             "`-sequential`: each site fitted with the earlier sites pruned to that architecture (`pdl.fit_sequential`): "
             f"`uniform`'s, or by score {report['config']['sequential_counts_of']}'s.",
             "",
             "| method | allocation | error before fine-tuning (%) | error after (%)"
             + (" (mean over seeds " + ", ".join(map(str, report["config"]["finetune_seeds"])) + "; each in brackets)"
                if len(report["config"]["finetune_seeds"]) > 1 else "") + " | MACs | params | heads kept per "
             "block | MLP units kept per block | latency b1 (ms) | latency b256 (ms) |",
             "|---|---|---|---|---|---|---|---|---|---|",
             f"| full network | — | — | {f['error_pct']:.2f} | {f['macs']:,} | {f['params']:,} | — | — | "
             f"{f['latency']['cpu_b1_ms']:.2f} | {f['latency']['cpu_b256_ms']:.1f} |"]
    for r in report["runs"]:
        heads = "-".join(str(v) for k, v in r["counts"].items() if k.endswith(":heads"))
        units = "-".join(str(v) for k, v in r["counts"].items() if not k.endswith(":heads"))
        lines.append(f"| {r['method']} | {r['allocation']} | {r['error_pruned_pct']:.2f} | {after(r)} | {r['macs']:,} | "
                     f"{r['params']:,} | {heads} | {units} | {r['latency']['cpu_b1_ms']:.2f} | "
                     f"{r['latency']['cpu_b256_ms']:.1f} |")
    fo = report["forest"]
    lines += ["", f"Posterior means of {fo['site']}'s heads: {fo['mean']} (forest plot: `{fo['file']}`).", "",
              "Seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in report["seconds"].items()) + ".", "",
              f"Command: `{report['command']}` ({report['wall_seconds'] / 60:.1f} min wall)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
