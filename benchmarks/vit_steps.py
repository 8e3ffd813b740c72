"""The ViT study's steps shared by its main rows (``benchmarks/vit.py``) and its switch-form
comparison (``benchmarks/vit_forms.py``): the switch fits, the seeded fine-tuning, the recipe."""
from __future__ import annotations

import dataclasses
import statistics
import time
from pathlib import Path

import torch

import pyro_dirichlet as pdl
from pyro_dirichlet.inference import pipeline
from pyro_dirichlet.io import complete, load_json, save_json


def switch_config(a, form: str) -> pdl.SwitchConfig:
    """``form``'s switch with ``--alpha0`` (default: the library's); ``rKs`` and ``cap`` keep the share
    ``--budget`` of every site, the share the shared architecture keeps (MACs are linear in
    the heads and units kept)."""
    return pdl.SwitchConfig(form=form, share=a.budget, **({"alpha0": a.alpha0} if a.alpha0 else {}))


def finetune_cfg(a) -> pdl.TrainConfig:
    return pdl.TrainConfig(epochs=a.finetune_epochs, batch_size=128, lr=2e-4, schedule="cosine",
                           augment=a.dataset == "cifar10", seed=1)


def dirichlet_scores(net, sites, fit_data, fit: pdl.FitConfig, switch: pdl.SwitchConfig, run: Path):
    """``(guide, posterior-mean ChannelScores, fit seconds)`` of the switches on ``sites``, resumed
    from (and timed once in) ``run``."""
    stem = run / (f"fit-{fit.epochs}-{switch.form}" + ("" if fit.mode == "layerwise" else f"-{fit.mode}")
                  + ("" if fit.estimator == "mean" else f"-{fit.estimator}{fit.num_samples}")
                  + ("" if switch.alpha0 == pdl.SwitchConfig().alpha0
                                                        else f"-a{switch.alpha0:g}")
                  + (f"-r{switch.share:g}" if switch.form in pdl.switch_config.SHARE_FORMS else ""))
    start = time.perf_counter()
    guide, _ = pdl.fit_switches(pdl.SwitchedNetwork(net, sites, switch), fit_data, fit, checkpoint=f"{stem}.ckpt",
                                progress=False)
    if not complete(run, stem.name + ".json"):
        save_json({"seconds": time.perf_counter() - start}, f"{stem}.json")
    means = guide.means()
    return guide, pdl.ChannelScores(means, "mean", net), load_json(f"{stem}.json")["seconds"]


def sequential_scores(net, sites, counts, fit_data, fit: pdl.FitConfig, switch: pdl.SwitchConfig, run: Path):
    """:func:`pdl.fit_sequential`'s means of ``sites`` in block order, heads before units, resumed
    from (and timed once in) a folder of ``run`` keyed by the fit, the switch and ``counts``:
    ``({site: (K,) means}, fit seconds)``."""
    order = sorted(sites, key=lambda site: (int(site.split(".")[1]), not site.endswith(":heads")))
    folder = pdl.io.keyed_folder(run, "sequential", {"fit": dataclasses.asdict(fit), **switch.settings(),
                                                      "counts": counts, "order": order})
    start = time.perf_counter()
    means = pdl.fit_sequential(net, order, counts, fit_data, fit, switch, net.input_shape, folder)
    if not complete(folder, "fit.json"):
        save_json({"seconds": time.perf_counter() - start}, folder / "fit.json")
    return means, load_json(folder / "fit.json")["seconds"]


def after(row: dict) -> str:
    """A row's error after fine-tuning: the mean, and each seed's where there are several."""
    seeds = row["error_pct_by_seed"]
    return f"{row['error_pct']:.2f}" + (f" ({', '.join(f'{e:.2f}' for e in seeds.values())})" if len(seeds) > 1 else "")


def finetuned(a, net, scores, counts, train, test, run: Path) -> tuple[dict, torch.nn.Module]:
    """``({"error_pct": mean over seeds, "error_pct_by_seed": {seed: test error %}}, the last seed's
    network)``: ``net`` pruned to ``counts`` by ``scores`` and fine-tuned by :func:`finetune_cfg` with
    each of ``--finetune-seeds``, resumed from checkpoints keyed by the kept indices and the recipe
    (shared by the main study and the forms report)."""
    keep = pdl.keep_indices(scores, counts)
    errors = []
    for seed in a.finetune_seeds:
        cfg = dataclasses.replace(finetune_cfg(a), seed=seed)
        name = f"ft-kept-{pdl.io.settings_key({'kept': keep, 'finetune': dataclasses.asdict(cfg)})}.ckpt"
        small = pdl.trim(net, keep, net.input_shape)
        errors.append(pipeline.finetune_measured(small, train, test, cfg, checkpoint=run / name)["error_pct"])
    return {"error_pct": statistics.mean(errors), "error_pct_by_seed": dict(zip(a.finetune_seeds, errors))}, small
