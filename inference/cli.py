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
from pyro_dirichlet.io import check_writable
from pyro_dirichlet.inference import pipeline

from .cli_options import HELP, _show_defaults, _step_options, _study_args


STEPS = ("pretrain", "fit", "prune", "finetune", "run")
# the library's messages name its own arguments; the command line names its flags instead
FLAGS = {"root=DIR": "--data-root DIR", "subset(n), n >= 1": "--train-subset / --test-subset N >= 1",
         "use 'cpu' or 'auto'": "use --device cpu or auto"}


def config_from_args(a: argparse.Namespace) -> pipeline.PipelineConfig:
    """The pipeline configuration of a step's options (options a step does not have keep
    their defaults; a step before pruning has no target)."""
    from pyro_dirichlet import FitConfig, SwitchConfig, TrainConfig

    base = pipeline.PipelineConfig()

    def opt(name, default):
        return getattr(a, name, default)

    def train_cfg(epochs, lr):
        return TrainConfig(epochs=epochs, lr=lr, optimizer=a.optimizer, batch_size=a.batch_size, seed=a.seed,
                           schedule=a.schedule, weight_decay=a.weight_decay, label_smoothing=a.label_smoothing,
                           augment=a.augment, channels_last=a.channels_last, compile=a.compile)

    target = None
    if hasattr(a, "arch"):
        if a.arch is None and a.budget_macs is None and a.mass is None and a.model == "lenet5" and a.widths is None:
            a.arch = "5-8-45-15"
        target = pipeline.Target(arch=a.arch, budget_macs=a.budget_macs, mass=a.mass, per_mac=a.budget_order == "per-mac")
    fit, switch = FitConfig(seed=a.seed), SwitchConfig()
    if hasattr(a, "estimator"):
        switch = SwitchConfig(a.alpha0, a.switch_form, a.steepness, a.temperature, a.share)
        fit = FitConfig(estimator=a.estimator, num_samples=a.samples, mode=a.mode, epochs=a.fit_epochs,
                        batch_size=a.fit_batch_size, lr=a.fit_lr, anneal_epochs=a.anneal_epochs,
                        kl_weight=a.kl_weight, seed=a.seed)
    return pipeline.PipelineConfig(
        run_dir=a.run_dir, model=a.model, widths=_widths(a.widths), data_root=a.data_root, download=not a.no_download,
        train_subset=a.train_subset, test_subset=a.test_subset, device=a.device, switch=switch,
        holdout=a.holdout, fit_data=opt("fit_data", base.fit_data),
        pretrain=train_cfg(a.pretrain_epochs, a.pretrain_lr), fit=fit, target=target,
        finetune=train_cfg(opt("finetune_epochs", base.finetune.epochs), opt("finetune_lr", base.finetune.lr)),
        progress=not a.no_progress,
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
    from pyro_dirichlet.inference.compare import CompareConfig, run_compare, run_finetune_length
    from pyro_dirichlet.inference.compare_report import aggregate

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
        check_writable(cfg.root)
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


CACHED = (" Work is cached in the run directory under folders keyed by the settings: a rerun with the same "
          "settings reuses it, changed settings compute anew, and an interrupted run resumes.")


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
        p = sub.add_parser(name, help=text, description=text + "." + CACHED, formatter_class=HELP)
        _step_options(p, name)
        p.set_defaults(func=_step(name))
    from pyro_dirichlet.models import MODELS

    text = "print {macs, paper_flops, params} of a zoo network as one JSON line"
    p = sub.add_parser("count", help=text, description=text, formatter_class=HELP)
    p.add_argument("--model", default="lenet5", choices=sorted(MODELS), help="network from the zoo")
    p.add_argument("--widths", default=None, help="full widths, e.g. 20-50-800-500")
    p.add_argument("--arch", default=None, help="pruned widths, e.g. 5-8-45-15 (lenet5: conv1, conv2, fc1 inputs, fc1)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.set_defaults(func=cmd_count)
    text = "the synthetic posterior study (mc against mean) and its speed benchmark"
    p = sub.add_parser("synthetic", help=text, description=text + CACHED, formatter_class=HELP)
    p.add_argument("--sizes", default="100x20,500x200,1000x500", help="comma-separated D_XxD_H")
    p.add_argument("--epochs", type=int, default=40, help="fit epochs per estimator and size")
    p.add_argument("--samples", type=int, default=1000, help="mc particles per step")
    p.add_argument("--timing-size", default="1000x500", help="D_XxD_H of the speed benchmark")
    p.add_argument("--timing-epochs", type=int, default=5, help="timed epochs after one warm-up")
    p.add_argument("--naive-epochs", type=int, default=2, help="timed epochs of naive mc, 0 to skip")
    p.add_argument("--no-timing", action="store_true", help="skip the speed benchmark")
    p.add_argument("--results", default="results/synthetic", help="folder for synthetic.json/.md and figures")
    p.add_argument("--run-dir", default="runs/synthetic", help="fit checkpoints")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_synthetic)
    from pyro_dirichlet.inference.compare import ALLOCATIONS, BUDGETS, METHODS, CompareConfig

    text = "every criterion on one trained LeNet-5 at several MAC budgets (the compression curve)"
    p = sub.add_parser("compare", help=text, description=text + CACHED, formatter_class=HELP)
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, from {', '.join(METHODS)}")
    p.add_argument("--budgets", default=",".join(map(str, BUDGETS)), help="MAC budgets")
    p.add_argument("--allocations", default=",".join(ALLOCATIONS),
                   help="same: every method keeps the same per-layer counts; own: each method's global ranking; "
                   "mass: Dirichlet methods keep the same share of each layer's posterior mass; cost: each "
                   "method's ranking per MAC (default: %(default)s)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated")
    p.add_argument("--finetune-epochs", type=int, default=CompareConfig.finetune_epochs, help="comma-separated")
    p.add_argument("--finetune-length", default=None, metavar="N,N,...",
                   help="instead of the comparison: the error after each number of fine-tuning epochs at the "
                   "smallest budget (lenet5_finetune_length.json)")
    p.add_argument("--fit-epochs", type=int, default=1, help="Dirichlet fit epochs per stage")
    p.add_argument("--samples", type=int, default=4, help="mc particles for dirichlet-mc")
    _study_args(p, "runs/lenet5-compare")
    p.set_defaults(func=cmd_compare)
    from pyro_dirichlet.inference.ablate import AblateConfig

    text = "what makes the switch posterior rank channels well: fit settings and switch forms on LeNet-5-Caffe"
    defaults = AblateConfig()
    p = sub.add_parser("ablate", help=text, description=text + CACHED, formatter_class=HELP)
    p.add_argument("--variants", default=",".join(defaults.variants), help="comma-separated (see inference/ablate.py)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated")
    p.add_argument("--holdout", type=int, default=defaults.holdout, help="training examples held out of pretraining "
                   "for the fit")
    p.add_argument("--budgets", default=",".join(map(str, defaults.budgets)), help="MAC budgets")
    p.add_argument("--cost-examples", type=int, default=defaults.cost_examples,
                   help="test images that measure removal costs; the rest measure errors")
    _study_args(p, defaults.run_dir)
    p.set_defaults(func=cmd_ablate)
    for p in sub.choices.values():
        _show_defaults(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.command_line = "pyro-dirichlet " + shlex.join(argv)
    try:
        for flag, folder in (("--run-dir", getattr(args, "run_dir", None)), ("--results", getattr(args, "results", None))):
            if folder is not None:
                try:
                    check_writable(folder)
                except ValueError as e:
                    raise ValueError(f"{flag}: {e}") from None
        device = distributed.init()  # under torchrun: this rank's device
        if device is not None and getattr(args, "device", "auto") in ("auto", "cuda"):
            args.device = str(device)
        result = args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        message = str(e)
        for library, flag in FLAGS.items():
            message = message.replace(library, flag)
        print(f"pyro-dirichlet {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pyro-dirichlet {args.command}: interrupted. Finished epochs are checkpointed: run the same command "
              "again to resume (the result is the same as an uninterrupted run's)", file=sys.stderr)
        return 2
    if distributed.is_main():
        print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
