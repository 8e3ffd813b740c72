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

import argparse
import copy
import dataclasses
import shlex
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
from pyro_dirichlet.latency import latency_ms
from pyro_dirichlet.models import build_model
from pyro_dirichlet.training import speed_record

METHODS = ("dirichlet-mean", "dirichlet-mc", "l1", "taylor")
BASELINES = ("l1", "taylor", "tp-magnitude")  # tp-magnitude: Torch-Pruning's GroupMagnitudeImportance (DepGraph)
EVERY_GROUP = "dirichlet-mean-every-group"  # residual networks: every channel group switched, residual streams too
RESIDUAL = ("resnet56", "wrn28_10")
ALL_METHODS = (*METHODS, EVERY_GROUP, "tp-magnitude")


def recipe(epochs: int, lr: float) -> pdl.TrainConfig:
    """The fast CIFAR-10 recipe of ``benchmarks/cifar10_training.py`` (SGD, one-cycle, crop+flip)."""
    return pdl.TrainConfig(epochs=epochs, batch_size=512, optimizer="sgd", lr=lr, weight_decay=5e-4,
                           schedule="onecycle", label_smoothing=0.1, augment=True, channels_last=True)


def add_run_args(ap: argparse.ArgumentParser) -> None:
    """The options both CIFAR-10 scripts share: the network, a given pretrained folder, data, device, folders."""
    ap.add_argument("--widths", type=int, default=None, help="every prunable layer this wide (a small stand-in)")
    ap.add_argument("--pretrained", default=None, help="start from this pretrained folder (a pretrained-<hash>/ that "
                    "the pretraining step wrote, e.g. ../shared/pretrained/resnet56-cifar10/pretrained-73bd612209); it "
                    "must be of --model on CIFAR-10, its pretraining settings replace --pretrain-*")
    ap.add_argument("--train-subset", type=int, default=None)
    ap.add_argument("--test-subset", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--run-dir", default=None, help="default: runs/<model>-cifar10-study")
    ap.add_argument("--results", default="results")
    ap.add_argument("--no-progress", action="store_true")


def run_config(a, pretrain: pdl.TrainConfig, **settings) -> pipeline.PipelineConfig:
    """The pipeline configuration of ``add_run_args``' options (``a.widths``: one width per layer),
    started from ``--pretrained`` if given (a mismatch exits, naming it)."""
    base = pipeline.PipelineConfig(
        run_dir=a.run_dir or f"runs/{a.model}-cifar10-study", model=a.model, data_root=a.data_root, widths=a.widths,
        train_subset=a.train_subset, test_subset=a.test_subset, device=a.device, progress=not a.no_progress,
        pretrain=pretrain, target=None, **settings)
    if not a.pretrained:
        return base
    try:
        return pipeline.adopt_pretrained(base, a.pretrained)
    except pipeline.PretrainedMismatch as e:
        sys.exit(f"{Path(sys.argv[0]).name}: --pretrained: {e}")


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """The study's settings, resolved from the options once (budgets from the model's table,
    methods, widths); a later step's value is a new config (``dataclasses.replace``)."""
    model: str
    methods: tuple[str, ...]
    budget_macs: int | None
    budget_params: float | None
    arch: str | None
    pretrain_epochs: int
    pretrain_lr: float
    fit_epochs: int
    fit_subset: int
    fit_batch_size: int
    samples: int
    switch_form: str | None
    finetune_epochs: int
    finetune_lr: float
    distill: float
    cpu_bf16: bool
    min_keep: float
    widths: tuple[int, ...] | None
    pretrained: str | None
    train_subset: int | None
    test_subset: int | None
    device: str
    data_root: str | None
    run_dir: str | None
    results: str
    no_progress: bool
    time_budget: float | None
    command: str
    pretrain_only: bool = False
    model_kwargs: dict = dataclasses.field(default_factory=dict)


def parse(argv: list[str] | None) -> StudyConfig:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="vgg16", choices=["vgg16", "resnet56", "wrn28_10"])
    ap.add_argument("--methods", default=None, help=f"from {', '.join(ALL_METHODS)} (default: "
                    f"{', '.join(METHODS)}, and {EVERY_GROUP} on {', '.join(RESIDUAL)})")
    ap.add_argument("--budget-macs", type=int, default=None, help="default: the model's supplement table")
    ap.add_argument("--budget-params", type=float, default=None,
                    help="parameters, or a fraction of the full network's if below 1; 0: no parameter budget")
    ap.add_argument("--arch", default=None, help="also prune to these architectures with the posterior means, "
                    "comma-separated (one count per layer or per stage each; e.g. a baseline's, to compare rankings "
                    "at the same counts; default: the model's table's, if any; none: no architecture run)")
    ap.add_argument("--pretrain-epochs", type=int, default=30)
    ap.add_argument("--pretrain-lr", type=float, default=0.4)
    ap.add_argument("--fit-epochs", type=int, default=3, help="per layer")
    ap.add_argument("--fit-subset", type=int, default=10_000,
                    help="random training images the switches are fitted on (results/archive/lenet5_fit_data.md: on "
                         "LeNet-5, 10,000 images x 3 epochs per layer prune as well as all 60,000 x 3 in a fifth "
                         "of the time; 1 epoch per layer is worse)")
    ap.add_argument("--fit-batch-size", type=int, default=256)
    ap.add_argument("--samples", type=int, default=4, help="mc particles")
    ap.add_argument("--switch-form", default=None, choices=pdl.switch_config.FORMS,
                    help="how a switch scales its channel (default: the library's choice for the network's kind: "
                         "s on ResNets, rKs on VGG-16, see the README)")
    ap.add_argument("--finetune-epochs", type=int, default=30)
    ap.add_argument("--finetune-lr", type=float, default=0.1)
    ap.add_argument("--distill", type=float, default=0.0, help="fine-tune every method with knowledge distillation "
                    "from the full network, this weight on its soft targets (pdl.Distill, T = 4; 0: off)")
    ap.add_argument("--cpu-bf16", action="store_true", help="fine-tune with bf16 autocast on the CPU (faster only "
                    "with AVX-512 BF16 or AMX: results/speed/cpu_bf16*.md; the switch fit and the errors stay fp32)")
    ap.add_argument("--min-keep", type=float, default=MIN_KEEP, help="every method's per-layer floor: at least "
                    "this share of each layer's channels (pdl.counts_for_budget)")
    add_run_args(ap)
    ap.add_argument("--pretrain-only", action="store_true",
                    help="stop after pretraining (and its speed record); a later run with the same settings resumes")
    ap.add_argument("--time-budget", type=float, default=None,
                    help="seconds for the whole study: fewer pretraining and fine-tuning epochs if the requested "
                         "ones would not fit, from this device's measured speed (inference/time_plan.py)")
    a = ap.parse_args(argv)
    table = paper.CIFAR10_TABLES.get(a.model, {})
    resolved = {
        "command": "python " + shlex.join(["benchmarks/cifar10_network.py", *(sys.argv[1:] if argv is None else argv)]),
        "budget_macs": a.budget_macs or table.get("budget_macs"),
        "budget_params": table.get("budget_params") if a.budget_params is None else (a.budget_params or None),
        "arch": None if a.arch == "none" else a.arch or table.get("arch"),
        "methods": tuple(a.methods.split(",") if a.methods else [*METHODS, *([EVERY_GROUP] if a.model in RESIDUAL
                                                                             else [])]),
        "widths": (a.widths,) * len(build_model(a.model).prunable_layers) if a.widths else None}
    if a.pretrained and a.time_budget:
        ap.error("--time-budget plans the pretraining epochs too; with --pretrained give --finetune-epochs instead")
    if resolved["budget_macs"] is None and resolved["budget_params"] is None:
        ap.error(f"give --budget-macs or --budget-params for {a.model} (no supplement budget is built in)")
    if set(resolved["methods"]) - set(ALL_METHODS):
        ap.error(f"--methods: choose from {', '.join(ALL_METHODS)}")
    if not 0 <= a.min_keep <= 1:
        ap.error(f"--min-keep is the share of each layer's channels every allocation keeps, in [0, 1]; got {a.min_keep}")
    cfg = StudyConfig(**{**vars(a), **resolved})
    if cfg.arch:  # refused now, not after pretraining and fitting
        shape = build_model(cfg.model, **({"widths": list(cfg.widths)} if cfg.widths else {}))
        for arch in archs(cfg):
            try:
                pdl.parse_architecture(arch, pdl.site_sizes(shape), getattr(shape, "layer_groups", None))
            except ValueError as e:
                ap.error(f"--arch {arch}: {e} (at --widths {cfg.widths[0] if cfg.widths else 'full'}); give an --arch "
                         "that fits")
    return cfg


def archs(a) -> list[str]:
    """``--arch``'s architectures (none: [])."""
    return a.arch.split(",") if a.arch else []


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


def latencies(net: nn.Module, cuda: bool) -> dict:
    """CPU (and GPU) milliseconds at batch 1 and 256 (:func:`latency_ms`; fewer repeats for CPU batch 256)."""
    shape = net.input_shape
    cpu = copy.deepcopy(net).cpu()
    out = {"cpu_b1_ms": latency_ms(cpu, shape, 1), "cpu_b256_ms": latency_ms(cpu, shape, 256, warmup=2, repeats=10)}
    if cuda:
        out |= {"gpu_b1_ms": latency_ms(net, shape, 1, warmup=20, repeats=200),
                "gpu_b256_ms": latency_ms(net, shape, 256, warmup=20, repeats=100)}
    return out


def onnx_check(net: nn.Module, path: Path) -> dict:
    """``pdl.export_network``'s ONNX file and check (onnxruntime's logits against PyTorch's)."""
    try:
        return pdl.export_network(net, path, net.input_shape, "onnx")
    except ImportError as e:
        return {"skipped": str(e)}


def first_layer_figure(net: nn.Module, site: str, means: torch.Tensor, image: torch.Tensor, path: Path,
                       top: int = 10) -> list[int]:
    """Feature maps of switch site ``site`` (where its switch acts: after its BatchNorm; then ReLU)
    for one image, every channel in a grid ordered by posterior mean, the ``top`` marked;
    returns their indices."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    point = pdl.SwitchedNetwork(net, [site], example_inputs=image[None]).switch_points()[site][-1]
    maps = []
    with pdl.frozen.hooks([point.register_forward_hook(lambda m, i, o: maps.append(o))]), pdl.frozen.frozen(net), \
            torch.no_grad():
        net(image[None].to(next(net.parameters()).device))
    fmap = torch.relu(maps[0][0]).float().cpu()
    order = torch.argsort(means, descending=True).tolist()
    cols = 8
    rows = -(-len(order) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.2))
    for ax, (rank, k) in zip(axes.flat, enumerate(order)):
        ax.imshow(fmap[k], cmap="gray")
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(f"{k}", fontsize=7, color="red" if rank < top else "black")
        if rank < top:
            for spine in ax.spines.values():
                spine.set_edgecolor("red"), spine.set_linewidth(2)
    for ax in list(axes.flat)[len(order):]:
        ax.axis("off")
    fig.suptitle(f"{site}: feature maps by switch posterior mean (top {top} in red)", fontsize=9, y=1.02)
    pdl.io.atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=90, format="png", bbox_inches="tight"))
    plt.close(fig)
    return order[:top]


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


def markdown(r: dict) -> str:
    b, cfg = r["baseline"], r["config"]
    table = paper.CIFAR10_TABLES.get(r["model"], {}).get("table", "")
    budget = f"{cfg['budget_macs']:,} MACs" + (f" and {cfg['budget_params']:,} parameters" if cfg["budget_params"]
                                               else "")
    lines = [f"{r['model']} on {r['dataset']}, {r['device']}; budget: {budget} ({table or 'given'}). Error after the "
             "same fine-tuning "
             f"({cfg['finetune']['epochs']} epochs"
             + (f", distilled from the full network with weight {cfg['distill']:g}, T 4" if cfg.get("distill") else "")
             + (", bf16 autocast on the CPU" if cfg.get("cpu_bf16") else "")
             + (f", per-layer floor {cfg['min_keep']:g} of each layer" if cfg.get("min_keep", MIN_KEEP) != MIN_KEEP
                else "")
             + "); the last epoch is reported.", "",
             "| method | architecture | error before fine-tuning (%) | error (%) | MACs | params | MAC ratio | "
             "params removed |", "|---|---|---|---|---|---|---|---|",
             f"| full network (ours) | — | — | {b['error_pct']:.2f} | {b['macs']:,} | {b['params']:,} | 1.0x | 0% |"]
    lines += [f"| {x['method']} | {x['architecture']} | {x['error_pruned_pct']:.2f} | {x['error_pct']:.2f} | "
              f"{x['macs']:,} | {x['params']:,} | {x['mac_ratio']:.1f}x | {100 - 100 * x['params'] / b['params']:.1f}% |"
              for x in r["runs"]]
    lines += [f"| {name} | — | — | {err} | {macs} | {params} | — | — |" for name, err, macs, params in r["paper"]]
    keys = list(b["latency"])
    lines += ["", "Latency (ms, median; speed-up against the full network):", "",
              "| network | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys),
              "| full | " + " | ".join(f"{b['latency'][k]:.3f}" for k in keys) + " |"]
    lines += [f"| {x['method']} | " + " | ".join(f"{x['latency'][k]:.3f} ({x['speedup'][k]:.1f}x)" for k in keys)
              + " |" for x in r["runs"]]
    if "onnx" in r:
        lines += ["", f"ONNX: {r['onnx']}"]
    if "figure2" in r:
        lines += [f"Figure 2: top 10 channels of {r['figure2']['layer']} by posterior mean: {r['figure2']['top10']}"]
    given = b.get("pretrained_from")
    pretraining = (f"the pretrained network was given: {given['source']} (sha256 {given['model_sha256'][:12]}, "
                   f"{b['pretrain_seconds']:.0f} s of pretraining where it was made)" if given else
                   f"pretraining {b['pretrain_seconds']:.0f} s")
    lines += ["", f"Command: `{r['command']}` ({r['wall_seconds'] / 60:.1f} min wall; {pretraining})."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
