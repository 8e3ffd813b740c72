"""Which switch form ranks channels well on a BatchNorm network? The ablation of
``inference/ablate.py`` on a CIFAR-10 network (ResNet-56 by default, from a given pretrained folder).

For each switch form (``VARIANTS``) the inner layers' switches are fitted (``mean``, layer by
layer, on ``--fit-subset`` training images for ``--fit-epochs`` epochs per layer), and the
posterior means are scored, as are the ``l1``, ``taylor`` and ``random`` references, by:

- ``error_pct``: test error right after pruning (no fine-tuning) with the same per-layer
  counts for every ranking, at each ``--archs`` (default: the paper's 6-11-16, and half of
  every inner layer), on the test images after the first ``--cost-examples``;
- ``spearman``: on ``--cost-layers``, the rank correlation with the true single-channel
  removal cost (the rise in cross-entropy on the first ``--cost-examples`` test images when
  that channel alone is removed: :func:`pyro_dirichlet.diagnostics.removal_costs`).

Each ranking's scores are cached in ``<run-dir>/<pretrained>/ablate-bn/<variant>-<h>/result.json``
(keyed by its settings), the removal costs beside them; the measures are recomputed each run.
Writes ``cifar10_<model>_ablation.{json,md}`` into ``--results``.

    python benchmarks/cifar10_ablation.py --pretrained ../shared/pretrained/resnet56-cifar10/pretrained-73bd612209
"""
from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from pathlib import Path

import torch

import pyro_dirichlet as pdl
from pyro_dirichlet import criteria
from pyro_dirichlet.devices import device_name
from pyro_dirichlet.diagnostics import removal_costs, spearman
from pyro_dirichlet.inference import pipeline
from pyro_dirichlet.io import keyed_folder, load_json, load_torch, save_json, save_text, save_torch

sys.path.insert(0, str(Path(__file__).parent))
from cifar10_options import add_run_args, recipe, run_config  # noqa: E402  (the study's recipe and options)

# variant -> switch settings (the fit is the same for all: mean, layer by layer)
VARIANTS = {
    "s": {"form": "s"},
    "Ks": {"form": "Ks"},
    "gate-3": {"form": "gate", "steepness": 3.0},
    "norm": {"form": "norm"},
    "bn": {"form": "bn"},
    "rKs-0.5": {"form": "rKs", "share": 0.5},
    "cap-0.5": {"form": "cap", "share": 0.5},
}
REFERENCES = ("l1", "taylor", "random")


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet56", choices=["resnet56", "vgg16", "wrn28_10"])
    add_run_args(ap)
    ap.add_argument("--pretrain-epochs", type=int, default=30, help="without --pretrained: the study's recipe")
    ap.add_argument("--variants", default=",".join((*VARIANTS, *REFERENCES)))
    ap.add_argument("--archs", default=None, help="comma-separated architectures (default for resnet56: 6-11-16 and "
                    "half of every inner layer)")
    ap.add_argument("--fit-subset", type=int, default=2_000)
    ap.add_argument("--fit-epochs", type=int, default=1, help="per layer")
    ap.add_argument("--fit-batch-size", type=int, default=250)
    ap.add_argument("--alpha0", type=float, default=pdl.SwitchConfig.alpha0)
    ap.add_argument("--cost-layers", default=None, help="comma-separated sites (default: the first block of each stage)")
    ap.add_argument("--cost-examples", type=int, default=500)
    ap.add_argument("--error-examples", type=int, default=5_000)
    a = ap.parse_args(argv)
    a.widths = (a.widths,) * len(pdl.models.build_model(a.model).prunable_layers) if a.widths else None
    a.command = "python " + shlex.join(["benchmarks/cifar10_ablation.py", *(sys.argv[1:] if argv is None else argv)])
    a.variants = a.variants.split(",")
    if set(a.variants) - {*VARIANTS, *REFERENCES}:
        ap.error(f"--variants: choose from {', '.join((*VARIANTS, *REFERENCES))}")
    return a


def default_archs(net) -> list[str]:
    widths = list(pdl.site_sizes(net).values())
    half = "-".join(str(max(1, w // 2)) for w in widths)
    return (["6-11-16"] if widths == [16] * 9 + [32] * 9 + [64] * 9 else []) + [half]


def variant_scores(name: str, a, net, fit_data, sites) -> dict:
    if name == "l1":
        return criteria.norm_scores(net, sites, p=1)
    if name == "random":
        return criteria.random_scores(net, sites, seed=0)
    if name == "taylor":
        return dict(pdl.CRITERIA["taylor"](net, sites, fit_data, seed=0))
    v = VARIANTS[name]
    switch = pdl.SwitchConfig(a.alpha0, v["form"], **{k: v[k] for k in ("steepness", "share") if k in v})
    switched = pdl.SwitchedNetwork(net, sites, switch)
    cfg = pdl.FitConfig(estimator="mean", mode="layerwise", epochs=a.fit_epochs, batch_size=a.fit_batch_size)
    guide, _ = pdl.fit_switches(switched, fit_data, cfg, progress=not a.no_progress)
    return guide.means(sites)


def main(argv: list[str] | None = None) -> dict:
    a = parse(argv)
    t0 = time.perf_counter()
    base = run_config(a, recipe(a.pretrain_epochs, 0.4))
    train, test = pipeline.load_data(base)
    net = pipeline.pretrain(base, train, test)
    sites = list(net.prunable_layers)
    cost_layers = a.cost_layers.split(",") if a.cost_layers else [sites[i] for i in range(0, len(sites), 9)]
    if not a.cost_examples < len(test):
        raise SystemExit(f"--cost-examples {a.cost_examples} leaves no test images for the errors ({len(test)})")
    cost_data = test.take(torch.arange(a.cost_examples, device=test.device))
    error_data = test.take(torch.arange(a.cost_examples, min(len(test), a.cost_examples + a.error_examples),
                                        device=test.device))
    fit_data = train.subset(a.fit_subset)
    folder = base.pretrained_dir / "ablate-bn"
    cost_file = keyed_folder(folder, "costs", {"cost_examples": a.cost_examples, "layers": cost_layers}) / "costs.pt"
    if not cost_file.exists():
        t = time.perf_counter()
        save_torch({"costs": removal_costs(net, cost_layers, cost_data, batch_size=250),
                    "seconds": time.perf_counter() - t}, cost_file)
    cost_record = load_torch(cost_file)
    costs = cost_record["costs"]
    archs = a.archs.split(",") if a.archs else default_archs(net)
    counts = {arch: pdl.parse_architecture(arch, pdl.site_sizes(net), getattr(net, "layer_groups", None))
              for arch in archs}
    rows = {}
    for name in a.variants:
        settings = {"variant": name, **VARIANTS.get(name, {})}
        if name in VARIANTS or name == "taylor":
            settings |= {"fit_subset": a.fit_subset, "fit_epochs": a.fit_epochs, "batch_size": a.fit_batch_size,
                         "alpha0": a.alpha0}
        record = keyed_folder(folder, name, settings) / "result.json"
        if not record.exists():
            t = time.perf_counter()
            scores = variant_scores(name, a, net, fit_data, sites)
            save_json({"settings": settings, "seconds": time.perf_counter() - t,
                       "scores": {k: v.detach().float().cpu().tolist() for k, v in scores.items()}}, record)
        row = load_json(record)
        scores = {k: torch.tensor(v) for k, v in row["scores"].items()}
        errors = {arch: pdl.evaluate(pdl.trim(net, pdl.keep_indices(scores, c), net.input_shape), error_data)
                  for arch, c in counts.items()}
        rows[name] = {"settings": settings, "seconds": row["seconds"], "error_pct": errors,
                      "spearman": {k: spearman(scores[k], costs[k]) for k in cost_layers}}
        print(f"{name}: {rows[name]['error_pct']} spearman {rows[name]['spearman']}", flush=True)
    report = {"model": a.model, "command": a.command, "device": device_name(pdl.resolve_device(a.device)),
              "pretrained": pipeline.pretrained_source(base) or str(base.pretrained_dir),
              "full_error_pct": pdl.evaluate(net, error_data), "error_examples": len(error_data),
              "cost_examples": len(cost_data), "cost_seconds": cost_record["seconds"],
              "archs": archs, "cost_layers": cost_layers, "variants": rows, "wall_seconds": time.perf_counter() - t0}
    out = Path(a.results)
    save_json(report, out / f"cifar10_{a.model}_ablation.json")
    save_text(markdown(report), out / f"cifar10_{a.model}_ablation.md")
    print(markdown(report))
    return report


def markdown(r: dict) -> str:
    layers, archs = r["cost_layers"], r["archs"]
    lines = [f"{r['model']} on CIFAR-10 (JPEG copy), {r['device']}. Full network: {r['full_error_pct']:.2f}% on the "
             f"{r['error_examples']:,} error images. Error right after pruning (no fine-tuning), same per-layer counts "
             f"for every ranking; Spearman with the true single-channel removal cost on {r['cost_examples']} other "
             "test images.", "",
             "| ranking | " + " | ".join(f"error % at {x}" for x in archs) + " | "
             + " | ".join(f"Spearman {s}" for s in layers) + " | seconds |",
             "|---" * (2 + len(archs) + len(layers)) + "|"]
    for name, v in r["variants"].items():
        cells = [f"{v['error_pct'][x]:.2f}" for x in archs]
        cells += ["—" if math.isnan(v["spearman"][s]) else f"{v['spearman'][s]:+.2f}" for s in layers]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {v['seconds']:.0f} |")
    lines += ["", f"Command: `{r['command']}` ({r['wall_seconds'] / 60:.1f} min wall; removal costs "
              f"{r['cost_seconds']:.0f} s). Pretrained: {r['pretrained']}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
