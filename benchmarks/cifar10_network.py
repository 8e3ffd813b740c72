"""One CIFAR-10 network's whole study in one command (the GPU kit's run, ``scripts/gpu_run.sh``).

pretrain -> fit the switches (``mean`` and ``mc``) -> prune to a budget of MACs (and parameters)
with the posterior means and with the ``l1`` and ``taylor`` baselines -> fine-tune each the same
way -> latency (CPU and, on a GPU, GPU; batch 1 and 256; full and pruned) -> ONNX export of the
Dirichlet-pruned network checked against PyTorch -> the first conv layer's feature maps ordered
by posterior mean (supplement Figure 2) and its forest plot -> ``cifar10_<model>.json`` (the
schema of ``lenet5_mnist.json`` plus ``latency``, ``onnx``, ``paper``, ``time_plan``), ``.md``
and the pretraining's speed (``cifar10_training.json`` for VGG-16, the schema of
``benchmarks/cifar10_training.py``) in ``--results``. Every step resumes from ``--run-dir``;
only small files are written as results. ``--time-budget`` plans the epochs to fit (inference/time_plan.py).

    python benchmarks/cifar10_network.py --model vgg16                       # Table 2's budget
    python benchmarks/cifar10_network.py --model vgg16 --widths 8 --train-subset 512 --test-subset 256 \\
        --pretrain-epochs 1 --fit-epochs 1 --finetune-epochs 1 --budget-macs 300000 --budget-params 0 \\
        --device cpu --results /tmp/r                                        # a CPU smoke run
"""
from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

import pyro_dirichlet as pdl
from pyro_dirichlet.devices import device_name
from pyro_dirichlet.inference import paper, pipeline, time_plan
from pyro_dirichlet.allocation import MIN_KEEP
from pyro_dirichlet.io import complete, keyed_folder, load_json, save_json, save_text
from pyro_dirichlet.models import build_model
from pyro_dirichlet.training import speed_record

sys.path.insert(0, str(Path(__file__).parent))
from cifar10_options import EVERY_GROUP, METHODS, archs, parse, recipe, run_config  # noqa: E402
from cifar10_report import first_layer_figure, latencies, markdown, onnx_check  # noqa: E402


def budgets(a, net: nn.Module) -> tuple[int, int | None]:
    """``(MACs, parameters or None)`` of the budget for ``net`` (no MAC budget: its full MACs; a
    parameter fraction: of its parameters), resolved after pretraining."""
    params = a.budget_params
    if params is not None and params < 1:
        params = int(params * pdl.count_params(net))
    return a.budget_macs or pdl.count_macs(net, net.input_shape), None if params is None else int(params)


def every_group_sites(net: nn.Module, train: pdl.ArrayDataset) -> list[str]:
    """Every prunable channel group of ``net``, the residual streams included."""
    example = train.inputs(torch.zeros(1, dtype=torch.long, device=train.device))
    return [g.name for g in pdl.channel_groups(net, example) if not g.is_output and g.problem is None]


def plan_epochs(a, base: pipeline.PipelineConfig, train: pdl.ArrayDataset, device: torch.device,
                started: float) -> dict:
    """The pretraining and fine-tuning epochs that fit ``--time-budget`` (inference/time_plan.py),
    measured on the untrained network on ``device``; saved in and reused from the run folder. A
    pretraining already done in the run folder is kept as it is (``pretrain_epochs`` 0 in the plan)."""
    net = build_model(a.model, **({"widths": list(a.widths)} if a.widths else {})).to(device)
    sites = list(net.prunable_layers)
    fits = {name: len(every_group_sites(net, train) if name == EVERY_GROUP else sites)
            * (a.samples if "-mc" in name else 1) for name in a.methods if name.startswith("dirichlet")}
    finetunes = len(a.methods) + len(archs(a)) * sum(m in METHODS and m.startswith("dirichlet") for m in a.methods)
    requested = time_plan.Work(n_train=len(train), n_fit=min(a.fit_subset, len(train)),
                               pretrain_epochs=a.pretrain_epochs, finetune_epochs=a.finetune_epochs,
                               finetunes=finetunes, fit_passes=a.fit_epochs * sum(fits.values()))
    pretrained = complete(base.pretrained_path, "model.pt", "spec.json")
    work = dataclasses.replace(requested, pretrain_epochs=0) if pretrained else requested
    key = {"model": a.model, "widths": a.widths, "device": device_name(device), "budget_seconds": a.time_budget,
           "work": dataclasses.asdict(requested)}  # a rerun finds its plan though its pretraining is now done
    measure = lambda: time_plan.measure_speed(net, train, base.pretrain, a.fit_batch_size, sites,  # noqa: E731
                                              lambda n: latencies(n, cuda=False))
    return time_plan.planned_epochs(Path(base.run_dir), key, measure, work, a.time_budget, started)


def training_record(a, base: pipeline.PipelineConfig, train: pdl.ArrayDataset, baseline: dict,
                    device: torch.device) -> dict:
    """The pretraining's speed and error in ``benchmarks/cifar10_training.py``'s schema, written to
    ``--results`` (VGG-16's as ``cifar10_training.json``, the GPU issue's file)."""
    history = pdl.io.load_torch(base.pretrained_dir / "train.ckpt")["history"]
    record = {"device": device_name(device),
              "command": a.command, "model": a.model,
              **speed_record(history, len(train)), "test_error_pct": baseline["error_pct"],
              "data": "CIFAR-10 (JPEG copy)" if "jpg" in train.name else train.name,
              "config": dataclasses.asdict(base.pretrain)}
    if pipeline.pretrained_source(base) is None:  # a given network's speed was measured elsewhere
        name = "cifar10_training.json" if a.model == "vgg16" else f"cifar10_training_{a.model}.json"
        save_json(record, Path(a.results) / name)
    return record


def per_mac(method: str) -> bool:
    """Each method's own budget order (README, LeNet-5's allocations): the posterior means per
    MAC; the baselines' normalised scores alone (per MAC, their nearly flat scores empty the
    costliest layer: LeNet-5's conv1 kept 1 channel)."""
    return method.startswith("dirichlet")


def target_of(a, net: nn.Module, arch: str | None, name: str) -> str:
    if arch:
        return f"arch-{arch}"
    params = f"+params-{a.budget_params}" if a.budget_params else ""
    return f"macs-{a.budget_macs}{params}" + (("-per-cost" if a.budget_params else "-per-mac") if per_mac(name) else "")


def prune_and_finetune(name: str, scores: dict, net: nn.Module, a, train, test, folder: Path,
                       arch: str | None = None) -> tuple[dict, nn.Module]:
    """``(result, fine-tuned network)`` of one method at the budget (or at ``arch``), cached in ``folder``."""
    if complete(folder, "result.json", "model.pt", "spec.json"):
        return with_seconds(load_json(folder / "result.json"), folder), pdl.load_pruned(folder, device=test.device)[0]
    if arch:
        sizes = {site: len(s) for site, s in scores.items()}
        counts = pdl.parse_architecture(arch, sizes, getattr(net, "layer_groups", None))
    else:
        counts = pdl.counts_for_budget(net, scores, a.budget_macs, net.input_shape, budget_params=a.budget_params,
                                       per_mac=per_mac(name), min_keep=a.min_keep)
    small, keep, before = pipeline.prune_to(net, scores, counts, None, test)
    after = pipeline.finetune_measured(small, train, test, recipe(a.finetune_epochs, a.finetune_lr),
                                       folder / "train.ckpt", not a.no_progress, distill(a, net), a.cpu_bf16)
    result = {"method": name, "target": target_of(a, net, arch, name), "architecture": before["architecture"],
              "error_pruned_pct": before["error_pct"], **after}
    pdl.save_pruned(small, {"model": net.zoo_name, "model_kwargs": a.model_kwargs, "input_shape":
                            list(net.input_shape), "kept": keep, **result}, folder)
    save_json(result, folder / "result.json")
    return with_seconds(result, folder), small


def distill(a, net: nn.Module) -> pdl.Distill | None:
    """``--distill``'s distillation from the full network ``net``, or None."""
    return pdl.Distill(net, a.distill) if a.distill else None


def with_seconds(result: dict, folder: Path) -> dict:
    """``result`` with the fine-tuning's wall seconds from its checkpoint's history."""
    history = pdl.io.load_torch(folder / "train.ckpt")["history"]
    return {**result, "finetune_seconds": sum(h["seconds"] for h in history)}


def main(argv: list[str] | None = None) -> dict:
    a = parse(argv)
    t0 = time.perf_counter()
    device = pdl.resolve_device(a.device)
    cuda = device.type == "cuda"
    base = run_config(a, recipe(a.pretrain_epochs, a.pretrain_lr),
                      **({"switch": pdl.SwitchConfig(form=a.switch_form)} if a.switch_form else {}))
    a = dataclasses.replace(a, pretrain_epochs=base.pretrain.epochs, pretrain_lr=base.pretrain.lr)
    train, test = pipeline.load_data(base)
    plan = None
    if a.time_budget:
        try:
            plan = plan_epochs(a, base, train, device, t0)
        except time_plan.TimePlanError as e:  # the measured speed comes back, to size the next call
            save_json({"model": a.model, "device": device_name(device), "refused": str(e), **e.record},
                      Path(a.results) / f"cifar10_{a.model}_time_plan.json")
            sys.exit(f"cifar10_network.py: {e}")
        a = dataclasses.replace(a, pretrain_epochs=plan["pretrain_epochs"] or a.pretrain_epochs,
                                finetune_epochs=plan["finetune_epochs"])
        base = dataclasses.replace(base, pretrain=recipe(a.pretrain_epochs, a.pretrain_lr))
        print(f"time plan: {a.pretrain_epochs} pretraining and {a.finetune_epochs} fine-tuning epochs, about "
              f"{plan['spent_seconds'] + plan['estimate_seconds']:.0f} s of {a.time_budget:.0f}", flush=True)
    net = pipeline.pretrain(base, train, test)
    baseline = pipeline.baseline(base)
    budget_macs, budget_params = budgets(a, net)
    a = dataclasses.replace(a, budget_macs=budget_macs, budget_params=budget_params,
                            model_kwargs={"widths": list(base.widths)} if base.widths else {})
    pretraining = training_record(a, base, train, baseline, device)
    pretrain_seconds = pretraining["total_train_seconds"]
    if a.pretrain_only:
        print(f"pretrained: {baseline['error_pct']:.2f}% test error, {pretrain_seconds:.0f} s; {base.pretrained_dir}")
        return {"baseline": baseline, "pretraining": pretraining}
    runs, networks, posteriors = [], {}, {}
    fit_data = train.subset(a.fit_subset)  # the switches' images, for every fit
    sites = list(net.prunable_layers)
    for name in a.methods:
        settings = {"budget_macs": a.budget_macs, "budget_params": a.budget_params, "per_mac": per_mac(name),
                    "finetune": dataclasses.asdict(recipe(a.finetune_epochs, a.finetune_lr)),
                    **({"distill": pdl.Distill(net, a.distill).settings()} if a.distill else {}),
                    **({"cpu_bf16": True} if a.cpu_bf16 else {}),
                    **({"min_keep": a.min_keep} if a.min_keep != MIN_KEEP else {}),  # the old folders' floor
                    # the per-MAC order counts parameters too under a parameter budget (allocation.counts_for_budget)
                    **({"cost": "macs+params"} if per_mac(name) and a.budget_params else {})}
        t_scores = time.perf_counter()
        if name.startswith("dirichlet"):
            estimator = name.split("-")[1]
            fit_cfg = pdl.FitConfig(estimator=estimator, num_samples=a.samples, epochs=a.fit_epochs,
                                    batch_size=a.fit_batch_size)
            cfg = dataclasses.replace(base, fit=fit_cfg)
            fit_sites = every_group_sites(net, train) if name == EVERY_GROUP else sites
            kind = "every-group" if name == EVERY_GROUP else "layers"
            parent = keyed_folder(base.pretrained_dir, f"fit-{estimator}-{kind}",
                                  {**cfg.fit_settings, "sites": fit_sites, "fit_subset": a.fit_subset})
            idata = pipeline.fit_sites(cfg, net, fit_data, fit_sites, parent)
            posteriors[name] = (idata, parent)
            scores = pdl.posterior_means(idata)
            score_seconds = load_json(parent / "fit.json")["fit_seconds"]
        else:
            scores = pdl.CRITERIA[name](net, sites, train, seed=0)
            parent, score_seconds = base.pretrained_dir, time.perf_counter() - t_scores
        result, small = prune_and_finetune(name, scores, net, a, train, test, keyed_folder(parent, name, settings))
        networks[name] = small
        runs.append({**result, "score_seconds": score_seconds})
        for arch in archs(a) if name in METHODS and name.startswith("dirichlet") else []:
            folder = keyed_folder(parent, name, {**settings, "arch": arch})
            result, small = prune_and_finetune(name, scores, net, a, train, test, folder, arch)
            networks[f"{name} {arch}"] = small
            runs.append({**result, "method": f"{name} {arch}", "score_seconds": score_seconds})
    print("timing latency", flush=True)
    baseline["latency"] = latencies(net, cuda)
    for r in runs:
        r["latency"] = latencies(networks[r["method"]], cuda)
        r["mac_ratio"] = baseline["macs"] / r["macs"]
        r["speedup"] = {k: baseline["latency"][k] / v for k, v in r["latency"].items()}
    out = Path(a.results)
    out.mkdir(parents=True, exist_ok=True)
    report = {"model": a.model, "dataset": "cifar10 (JPEG copy)" if "jpg" in train.name else "cifar10",
              "device": device_name(device),
              "command": a.command,
              "baseline": {**baseline, "pretrain_seconds": pretrain_seconds,
                           "pretrained_from": pipeline.pretrained_source(base)}, "runs": runs,
              "config": {"pretrain": dataclasses.asdict(base.pretrain), **base.switch_used.settings(),
                         "fit_epochs": a.fit_epochs, "fit_subset": a.fit_subset,
                         "samples": a.samples,
                         "budget_macs": a.budget_macs, "budget_params": a.budget_params, "arch": a.arch,
                         "finetune": dataclasses.asdict(recipe(a.finetune_epochs, a.finetune_lr)),
                         "distill": a.distill, "cpu_bf16": a.cpu_bf16, "min_keep": a.min_keep},
              "paper": paper.CIFAR10_TABLES.get(a.model, {}).get("paper", []), "time_plan": plan}
    dirichlet = next((m for m in ("dirichlet-mean", "dirichlet-mc") if m in networks), None)
    if dirichlet:
        # in the run folder: WRN-28-10's pruned network is larger than a results file may be
        report["onnx"] = onnx_check(networks[dirichlet], Path(base.run_dir) / f"{dirichlet}.onnx")
        idata, _ = posteriors[dirichlet]
        first = sites[0]
        image = test.inputs(torch.zeros(1, dtype=torch.long, device=test.device))[0]  # the first test image
        top10 = first_layer_figure(net, first, pdl.posterior_means(idata)[first], image,
                                   out / f"cifar10_{a.model}_figure2.png")
        report["figure2"] = {"posterior": dirichlet, "layer": first, "top10": top10}
        pdl.posterior.plot_forest(idata, first, out / f"cifar10_{a.model}_forest-{first}.png", top=64)
    report["wall_seconds"] = time.perf_counter() - t0
    save_json(report, out / f"cifar10_{a.model}.json")
    save_text(markdown(report), out / f"cifar10_{a.model}.md")
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
