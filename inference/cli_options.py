"""The command line's options: each pipeline step's (their defaults read from the library's
configs, one place each), the study harnesses', and the help formatter that shows defaults."""
from __future__ import annotations

import argparse

from pyro_dirichlet.inference import pipeline


def _step_options(p: argparse.ArgumentParser, step: str) -> None:
    """The options a step reads: each step also needs the settings of the steps before it,
    because every step's folder is keyed by them."""
    from pyro_dirichlet import FitConfig, SwitchConfig
    from pyro_dirichlet import allocation as pdl_allocation
    from pyro_dirichlet.switch_config import AUTO, FORMS

    base, fit, switch = pipeline.PipelineConfig(), FitConfig(), SwitchConfig()  # the defaults, in one place each
    g = p.add_argument_group("run")
    g.add_argument("--run-dir", default=None, help="folder for all outputs (default: runs/<model>-<data set>)")
    g.add_argument("--model", default="lenet5", choices=sorted(pipeline.DATASETS),
                   help="network from the zoo (airbench94 trains with its own recipe: benchmarks/airbench_pretrain.py)")
    g.add_argument("--widths", default=None, help="full widths of the switch sites, e.g. 20-50-800-500")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda")
    g.add_argument("--data-root", default=None, help="data folder (default: $PYRO_DIRICHLET_DATA, else ./data)")
    g.add_argument("--no-download", action="store_true", help="never download missing data")
    g.add_argument("--train-subset", type=int, default=None, help="use N random training examples (N >= 1)")
    g.add_argument("--test-subset", type=int, default=None, help="use N random test examples (N >= 1)")
    g.add_argument("--holdout", type=int, default=0, help="training examples held out of pretraining")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g = p.add_argument_group("training (pretraining" + (" and fine-tuning)" if step in ("finetune", "run") else ")"))
    g.add_argument("--pretrain-epochs", type=int, default=base.pretrain.epochs)
    g.add_argument("--pretrain-lr", type=float, default=base.pretrain.lr)
    g.add_argument("--optimizer", default="adam", choices=["adam", "sgd"])
    g.add_argument("--batch-size", type=int, default=128)
    g.add_argument("--schedule", default="cosine", choices=["cosine", "onecycle", "constant"])
    g.add_argument("--weight-decay", type=float, default=0.0)
    g.add_argument("--label-smoothing", type=float, default=0.0)
    g.add_argument("--augment", action="store_true", help="random crop (pad 4) + flip on the device (CIFAR-10)")
    g.add_argument("--channels-last", action="store_true", help="channels_last memory format (fast on GPUs)")
    g.add_argument("--compile", action="store_true", help="torch.compile the network for training")
    if step == "pretrain":
        return
    g = p.add_argument_group("switch fitting")
    g.add_argument("--fit-data", default="train", choices=["train", "holdout"],
                   help="fit the switches on the pretraining examples or on the held-out ones")
    g.add_argument("--estimator", default=fit.estimator, choices=["mean", "mc"])
    g.add_argument("--samples", type=int, default=fit.num_samples, help="Monte-Carlo particles per step for mc")
    g.add_argument("--mode", default=fit.mode, choices=["joint", "layerwise"])
    g.add_argument("--fit-epochs", type=int, default=fit.epochs, help="epochs per stage (per site in layerwise mode)")
    g.add_argument("--fit-batch-size", type=int, default=fit.batch_size)
    g.add_argument("--fit-lr", type=float, default=fit.lr)
    g.add_argument("--alpha0", type=float, default=switch.alpha0, help="Dirichlet prior concentration")
    g.add_argument("--anneal-epochs", type=float, default=fit.anneal_epochs,
                   help="KL weight rises to its final value over this many epochs")
    g.add_argument("--kl-weight", type=float, default=fit.kl_weight,
                   help="final KL weight (1: the ELBO; below 1 tempers the prior)")
    g.add_argument("--switch-form", default=switch.form, choices=(*FORMS, AUTO),
                   help="auto (default): the form of the network's kind (README); a switch multiplies its channel by s, K s, r K s (r: --share), min(1, r K s), the gate tanh(c K s)/tanh(c), "
                        "sqrt(K) s/|s|, or s followed by a training-mode BatchNorm")
    g.add_argument("--temperature", action="store_true", help="fit a logit temperature beside the switches")
    g.add_argument("--steepness", type=float, default=switch.steepness, help="the gate's c")
    g.add_argument("--share", type=float, default=switch.share,
                   help="the rKs and cap forms' r: the share of each site's channels the pruned network keeps")
    if step == "fit":
        return
    g = p.add_argument_group("pruning target (one of; lenet5's default: --arch 5-8-45-15, other models: required)")
    g.add_argument("--arch", default=None, help="keep counts per switch site, e.g. 5-8-45-15")
    g.add_argument("--budget-macs", type=int, default=None, help="choose counts to fit this many MACs")
    g.add_argument("--mass", type=float, default=None, help="keep the top channels holding this posterior mass")
    g.add_argument("--budget-order", default="per-mac" if pdl_allocation.PER_MAC else "score", choices=["per-mac", "score"],
                   help="--budget-macs removes channels by posterior mean per MAC of the channel, or by K E[s] alone")
    if step == "prune":
        return
    g = p.add_argument_group("fine-tuning")
    g.add_argument("--finetune-epochs", type=int, default=base.finetune.epochs)
    g.add_argument("--finetune-lr", type=float, default=base.finetune.lr)


def _study_args(p: argparse.ArgumentParser, run_dir: str) -> None:
    """The options of a study harness (compare, ablate): pipeline.StudySettings, run dir, results."""
    p.add_argument("--pretrain-epochs", type=int, default=12, help="comma-separated")
    p.add_argument("--run-dir", default=run_dir, help="cache of every step")
    p.add_argument("--results", default="results", help="comma-separated")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--data-root", default=None, help="data folder (default: $PYRO_DIRICHLET_DATA, else ./data)")
    p.add_argument("--train-subset", type=int, default=None)
    p.add_argument("--test-subset", type=int, default=None)
    p.add_argument("--no-progress", action="store_true")


class HELP(argparse.HelpFormatter):
    """Each option's default after its help, unless the help already says it (or it has none)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = (action.help or "").strip()
        if action.option_strings and _has_default(action) and "default" not in text:
            text += " (default: %(default)s)"
        return text.strip()


def _has_default(action: argparse.Action) -> bool:
    return not (action.default is None or action.default is False or action.default is argparse.SUPPRESS)


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Options without a help text get one, so that their default is shown too."""
    for action in parser._actions:
        if action.option_strings and action.help is None and _has_default(action):
            action.help = "(default: %(default)s)"
