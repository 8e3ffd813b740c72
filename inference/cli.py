"""Command line: ``pyro-dirichlet {pretrain,fit,prune,finetune,run,count,synthetic,compare,ablate}``.

All steps share one run directory (see :mod:`pyro_dirichlet.inference.pipeline`); each
reads the previous step's output from it and reuses work done with the same settings.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import warnings

from pyro_dirichlet import distributed
from pyro_dirichlet.inference import pipeline


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("run")
    g.add_argument("--run-dir", default=None, help="folder for all outputs (default: runs/<model>-<data set>)")
    g.add_argument("--model", default="lenet5", help="network from the zoo (default: %(default)s)")
    g.add_argument("--widths", default=None, help="full widths of the switch sites, e.g. 20-50-800-500")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda (default: %(default)s)")
    g.add_argument("--data-root", default=None, help="data folder (default: $PYRO_DIRICHLET_DATA, else ./data)")
    g.add_argument("--no-download", action="store_true", help="never download missing data")
    g.add_argument("--train-subset", type=int, default=None, help="use N random training examples")
    g.add_argument("--test-subset", type=int, default=None, help="use N random test examples")
    g.add_argument("--holdout", type=int, default=0, help="training examples held out of pretraining (default: 0)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g = p.add_argument_group("pretrain / finetune")
    g.add_argument("--pretrain-epochs", type=int, default=12)
    g.add_argument("--pretrain-lr", type=float, default=1e-3)
    g.add_argument("--finetune-epochs", type=int, default=20)
    g.add_argument("--finetune-lr", type=float, default=1e-3)
    g.add_argument("--optimizer", default="adam", choices=["adam", "sgd"])
    g.add_argument("--batch-size", type=int, default=128)
    g.add_argument("--schedule", default="cosine", choices=["cosine", "onecycle", "constant"])
    g.add_argument("--weight-decay", type=float, default=0.0)
    g.add_argument("--label-smoothing", type=float, default=0.0)
    g.add_argument("--augment", action="store_true", help="random crop (pad 4) + flip on the device (CIFAR-10)")
    g.add_argument("--channels-last", action="store_true", help="channels_last memory format (fast on GPUs)")
    g.add_argument("--compile", action="store_true", help="torch.compile the network for training")
    g = p.add_argument_group("switch fitting")
    g.add_argument("--fit-data", default="train", choices=["train", "holdout"],
                   help="fit the switches on the pretraining examples or on the held-out ones (default: %(default)s)")
    g.add_argument("--estimator", default="mean", choices=["mean", "mc"])
    g.add_argument("--samples", type=int, default=16, help="Monte-Carlo particles per step for mc")
    g.add_argument("--mode", default="layerwise", choices=["joint", "layerwise"])
    g.add_argument("--fit-epochs", type=int, default=3, help="epochs per stage (per layer in layerwise mode)")
    g.add_argument("--fit-batch-size", type=int, default=100)
    g.add_argument("--fit-lr", type=float, default=0.05)
    g.add_argument("--alpha0", type=float, default=0.5, help="Dirichlet prior concentration")
    g.add_argument("--anneal-epochs", type=float, default=1.0, help="KL weight rises to its final value over this many epochs")
    g.add_argument("--kl-weight", type=float, default=1.0, help="final KL weight (1: the ELBO; below 1 tempers the prior)")
    g.add_argument("--switch-form", default="s", choices=["Ks", "s", "gate", "bn"],
                   help="a switch multiplies its channel by K s, s, the gate tanh(c K s)/tanh(c), or s followed by "
                        "a training-mode BatchNorm (default: %(default)s)")
    g.add_argument("--temperature", action="store_true", help="fit a logit temperature beside the switches")
    g.add_argument("--steepness", type=float, default=3.0, help="the gate's c (default: %(default)s)")
    g = p.add_argument_group("pruning target (one of)")
    g.add_argument("--arch", default=None, help="keep counts per switch site, e.g. 5-8-45-15 (lenet5's default)")
    g.add_argument("--budget-macs", type=int, default=None, help="choose counts to fit this many MACs")
    g.add_argument("--mass", type=float, default=None, help="keep the top channels holding this posterior mass")


def config_from_args(a: argparse.Namespace) -> pipeline.PipelineConfig:
    from pyro_dirichlet import FitConfig, TrainConfig

    if a.arch is None and a.budget_macs is None and a.mass is None:
        a.arch = "5-8-45-15" if a.model == "lenet5" and a.widths is None else None
    def train_cfg(epochs, lr):
        return TrainConfig(epochs=epochs, lr=lr, optimizer=a.optimizer, batch_size=a.batch_size, seed=a.seed,
                           schedule=a.schedule, weight_decay=a.weight_decay, label_smoothing=a.label_smoothing,
                           augment=a.augment, channels_last=a.channels_last, compile=a.compile)

    return pipeline.PipelineConfig(
        run_dir=a.run_dir, model=a.model, widths=_widths(a.widths), data_root=a.data_root, download=not a.no_download,
        train_subset=a.train_subset, test_subset=a.test_subset, device=a.device, alpha0=a.alpha0,
        holdout=a.holdout, fit_data=a.fit_data, switch_form=a.switch_form, steepness=a.steepness,
        temperature=a.temperature,
        pretrain=train_cfg(a.pretrain_epochs, a.pretrain_lr),
        fit=FitConfig(estimator=a.estimator, num_samples=a.samples, mode=a.mode, epochs=a.fit_epochs,
                      batch_size=a.fit_batch_size, lr=a.fit_lr, anneal_epochs=a.anneal_epochs, kl_weight=a.kl_weight,
                      seed=a.seed),
        target=pipeline.Target(arch=a.arch, budget_macs=a.budget_macs, mass=a.mass),
        finetune=train_cfg(a.finetune_epochs, a.finetune_lr), progress=not a.no_progress,
    )


def _widths(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(w) for w in text.split("-"))
    except ValueError:
        raise ValueError(f"--widths {text!r} is not a dash-separated list of integers like 20-50-800-500") from None


def cmd_count(a: argparse.Namespace) -> dict:
    from pyro_dirichlet import count_ops, count_params, input_links, parse_architecture, resolve_device, site_sizes
    from pyro_dirichlet.models import build_model

    net = build_model(a.model, _widths(a.widths))
    if a.arch is not None:
        links = input_links(net, net.prunable_layers, net.input_shape)
        counts = parse_architecture(a.arch, site_sizes(net), getattr(net, "layer_groups", None), links)
        net = build_model(a.model, list(counts.values()))
    net = net.to(resolve_device(a.device))
    return {**count_ops(net, net.input_shape), "params": count_params(net)}


def cmd_synthetic(a: argparse.Namespace) -> dict:
    from pyro_dirichlet.inference.synthetic import StudyConfig, run_study

    cfg = StudyConfig(sizes=tuple(_size(text) for text in a.sizes.split(",")), epochs=a.epochs,
                      mc_samples=a.samples, timing_epochs=a.timing_epochs, naive_epochs=a.naive_epochs,
                      timing_size=_size(a.timing_size), seed=a.seed, device=a.device, run_dir=a.run_dir,
                      timing=not a.no_timing)
    if cfg.epochs < 1 or cfg.mc_samples < 1 or cfg.timing_epochs < 1 or cfg.naive_epochs < 0:
        raise ValueError("need --epochs, --samples, --timing-epochs >= 1 and --naive-epochs >= 0")
    result = run_study(cfg, a.results, a.command_line, progress=not a.no_progress)
    return {"sizes": [{k: row[k] for k in ("d_x", "d_h")} | {e: {m: round(row[e][m], 6) for m in ("corr", "rmse", "mean_sd")}
                                                         for e in ("mc", "mean")} for row in result["sizes"]],
            "timing": result["timing"], "results": f"{a.results}/synthetic.json"}


def cmd_compare(a: argparse.Namespace) -> dict:
    from pyro_dirichlet.inference.compare import CompareConfig, aggregate, run_compare, run_finetune_length

    cfg = CompareConfig(
        methods=tuple(a.methods.split(",")), budgets=_ints(a.budgets, "--budgets"),
        allocations=tuple(a.allocations.split(",")), seeds=_ints(a.seeds, "--seeds"),
        finetune_epochs=a.finetune_epochs, fit_epochs=a.fit_epochs, mc_samples=a.samples, **_study_settings(a))
    if a.finetune_length:
        result = run_finetune_length(cfg, _ints(a.finetune_length, "--finetune-length"), a.results, a.command_line)
        return {"error_pct": {f"{r['method']}@{r['finetune_epochs']}": round(r["mean_pct"], 3) for r in result["rows"]},
                "results": f"{a.results}/lenet5_finetune_length.json"}
    result = run_compare(cfg, a.results, a.command_line)
    table = aggregate(result["runs"])
    return {"full_error_pct": result["full"]["error_finetuned_pct"],
            "finetuned_error_pct": {f"{m}/{al}@{b}": round(v["finetuned"][0], 3) for (m, al, b), v in table.items()},
            "results": f"{a.results}/lenet5_baselines.json"}


def cmd_ablate(a: argparse.Namespace) -> dict:
    from pyro_dirichlet.inference.ablate import AblateConfig, run_ablation

    cfg = AblateConfig(
        variants=tuple(a.variants.split(",")), seeds=_ints(a.seeds, "--seeds"),
        holdout=a.holdout, budgets=_ints(a.budgets, "--budgets"), cost_examples=a.cost_examples, **_study_settings(a))
    result = run_ablation(cfg, a.results, a.command_line)
    return {"spearman": {name: {site: round(v[0], 3) for site, v in row["spearman"].items()}
                         for name, row in result["variants"].items()},
            "results": f"{a.results}/lenet5_ablation.json"}


def _study_args(p: argparse.ArgumentParser, run_dir: str) -> None:
    """The options of a study harness (compare, ablate): pipeline.StudySettings, run dir, results."""
    p.add_argument("--pretrain-epochs", type=int, default=12, help="(default: %(default)s)")
    p.add_argument("--run-dir", default=run_dir, help="cache of every step (default: %(default)s)")
    p.add_argument("--results", default="results", help="(default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: %(default)s)")
    p.add_argument("--data-root", default=None, help="data folder (default: $PYRO_DIRICHLET_DATA, else ./data)")
    p.add_argument("--train-subset", type=int, default=None)
    p.add_argument("--test-subset", type=int, default=None)
    p.add_argument("--no-progress", action="store_true")


def _study_settings(a: argparse.Namespace) -> dict:
    from pyro_dirichlet import TrainConfig

    return {"run_dir": a.run_dir, "device": a.device, "data_root": a.data_root, "train_subset": a.train_subset,
            "test_subset": a.test_subset, "progress": not a.no_progress,
            "pretrain": TrainConfig(epochs=a.pretrain_epochs, lr=1e-3)}


def _ints(text: str, flag: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"{flag} {text!r} is not a comma-separated list of integers") from None


def _size(text: str) -> tuple[int, int]:
    try:
        d_x, d_h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--sizes entry {text!r} is not D_XxD_H like 1000x500") from None
    return d_x, d_h


def _step(name: str):
    def command(a: argparse.Namespace) -> dict:
        cfg = config_from_args(a)
        if name == "run":
            return pipeline.run(cfg)
        train, test = pipeline.load_data(cfg)
        net = pipeline.pretrain(cfg, train, test)
        if name == "pretrain":
            return pipeline.load_json(cfg.pretrained_dir / "spec.json") | {"kept": "all"}
        idata = pipeline.fit(cfg, net, train)
        if name == "fit":
            return pipeline.load_json(cfg.fit_dir / "fit.json")
        pruned = pipeline.prune(cfg, net, idata, test)
        if name == "prune":
            spec = pipeline.load_json(cfg.prune_dir / "spec.json")
            return {k: spec[k] for k in ("architecture", "error_pct", "macs", "paper_flops", "params")}
        return pipeline.finetune(cfg, pruned, train, test)

    return command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyro-dirichlet", description="Dirichlet pruning of neural networks in Pyro.")
    sub = parser.add_subparsers(dest="command", required=True)
    helps = {
        "pretrain": "train the full network",
        "fit": "fit the Dirichlet switch posteriors (runs pretrain if needed)",
        "prune": "remove the lowest-ranked channels (runs earlier steps if needed)",
        "finetune": "fine-tune the pruned network (runs earlier steps if needed)",
        "run": "all steps in one run directory",
    }
    for name, text in helps.items():
        p = sub.add_parser(name, help=text, description=text)
        _common(p)
        p.set_defaults(func=_step(name))
    p = sub.add_parser("count", help="print {macs, paper_flops, params} of a zoo network as one JSON line")
    p.add_argument("--model", default="lenet5")
    p.add_argument("--widths", default=None, help="full widths, e.g. 20-50-800-500")
    p.add_argument("--arch", default=None, help="pruned widths, e.g. 5-8-45-15 (lenet5: conv1, conv2, fc1 inputs, fc1)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: %(default)s)")
    p.set_defaults(func=cmd_count)
    text = "the synthetic posterior study (mc against mean) and its speed benchmark"
    p = sub.add_parser("synthetic", help=text, description=text)
    p.add_argument("--sizes", default="100x20,500x200,1000x500", help="comma-separated D_XxD_H (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=40, help="fit epochs per estimator and size (default: %(default)s)")
    p.add_argument("--samples", type=int, default=1000, help="mc particles per step (default: %(default)s)")
    p.add_argument("--timing-size", default="1000x500", help="D_XxD_H of the speed benchmark (default: %(default)s)")
    p.add_argument("--timing-epochs", type=int, default=5, help="timed epochs after one warm-up (default: %(default)s)")
    p.add_argument("--naive-epochs", type=int, default=2, help="timed epochs of naive mc, 0 to skip (default: %(default)s)")
    p.add_argument("--no-timing", action="store_true", help="skip the speed benchmark")
    p.add_argument("--results", default="results", help="folder for synthetic.json/.md and figures (default: %(default)s)")
    p.add_argument("--run-dir", default="runs/synthetic", help="fit checkpoints (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_synthetic)
    from pyro_dirichlet.inference.compare import ALLOCATIONS, BUDGETS, METHODS, CompareConfig

    text = "every criterion on one trained LeNet-5 at several MAC budgets (the compression curve)"
    p = sub.add_parser("compare", help=text, description=text)
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated (default: all)")
    p.add_argument("--budgets", default=",".join(map(str, BUDGETS)), help="MAC budgets (default: %(default)s)")
    p.add_argument("--allocations", default=",".join(ALLOCATIONS),
                   help="same: every method keeps the same per-layer counts; own: each method's global ranking "
                   "(default: %(default)s)")
    p.add_argument("--seeds", default="0,1,2", help="(default: %(default)s)")
    p.add_argument("--finetune-epochs", type=int, default=CompareConfig.finetune_epochs, help="(default: %(default)s)")
    p.add_argument("--finetune-length", default=None, metavar="N,N,...",
                   help="instead of the comparison: the error after each number of fine-tuning epochs at the "
                   "smallest budget (lenet5_finetune_length.json)")
    p.add_argument("--fit-epochs", type=int, default=1, help="Dirichlet fit epochs per stage (default: %(default)s)")
    p.add_argument("--samples", type=int, default=4, help="mc particles for dirichlet-mc (default: %(default)s)")
    _study_args(p, "runs/lenet5-compare")
    p.set_defaults(func=cmd_compare)
    from pyro_dirichlet.inference.ablate import AblateConfig

    text = "what makes the switch posterior rank channels well: fit settings and switch forms on LeNet-5-Caffe"
    defaults = AblateConfig()
    p = sub.add_parser("ablate", help=text, description=text)
    p.add_argument("--variants", default=",".join(defaults.variants), help="comma-separated (default: all)")
    p.add_argument("--seeds", default="0,1,2", help="(default: %(default)s)")
    p.add_argument("--holdout", type=int, default=defaults.holdout, help="training examples held out of pretraining "
                   "for the fit (default: %(default)s)")
    p.add_argument("--budgets", default=",".join(map(str, defaults.budgets)), help="MAC budgets (default: %(default)s)")
    p.add_argument("--cost-examples", type=int, default=defaults.cost_examples,
                   help="test images that measure removal costs; the rest measure errors (default: %(default)s)")
    _study_args(p, defaults.run_dir)
    p.set_defaults(func=cmd_ablate)
    return parser


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.command_line = "pyro-dirichlet " + shlex.join(argv)
    try:
        device = distributed.init()  # under torchrun: this rank's device
        if device is not None and getattr(args, "device", "auto") in ("auto", "cuda"):
            args.device = str(device)
        result = args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"pyro-dirichlet {args.command}: error: {e}", file=sys.stderr)
        return 2
    if distributed.is_main():
        print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
