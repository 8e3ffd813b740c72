"""The end-to-end pipeline in one run directory: pretrain -> fit -> prune -> finetune.

Each step writes into a folder named by a hash of its own settings, inside the folder of
the step it read from, with those settings in ``config.json`` beside its results
(:func:`pyro_dirichlet.io.keyed_folder`). A rerun with the same settings reuses every
step; a changed setting recomputes that step and those after it, in new folders::

    <run_dir>/pretrained-<h>/{config.json, model.pt, spec.json, train.ckpt, holdout.json}
        config: model, widths, data set, train/test subset sizes, holdout size, training settings (seed included)
    <run_dir>/pretrained-<h>/fit-<estimator>-<mode>-<h>/{config.json, switches.ckpt, posterior.nc, summary.csv, fit.json}
        config: fit data, alpha0, switch form, fit settings (seed included)
    .../fit-.../prune-<target>/{model.pt, spec.json}
    .../fit-.../prune-<target>/finetuned-<h>/{config.json, model.pt, spec.json, train.ckpt, result.json}

``target`` is ``arch-5-8-45-15``, ``macs-136825`` or ``mass-0.9``. The default run
directory is ``runs/<model>-<data set>``. The device is not part of the key.

Fit split: with ``holdout = n > 0``, n random training examples (fixed seed) are held out
of pretraining, and their indices in the full training set are kept in ``holdout.json``.
The switches are fitted on them (``fit_data="holdout"``) or on the pretraining examples
(``"train"``); fine-tuning uses the whole training set.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
import torch.nn as nn

import pyro_dirichlet as pdl
from pyro_dirichlet.io import complete, file_sha256, load_json, save_json, save_text
from pyro_dirichlet.models import build_model

from .pipeline_config import DATASETS, FIT_DATA, PipelineConfig, StudySettings, Target, _zoo_switch  # noqa: F401


def load_data(cfg: PipelineConfig) -> tuple[pdl.ArrayDataset, pdl.ArrayDataset]:
    """(train, test) of the model's data set (MNIST or CIFAR-10) on the configured device,
    subset if asked."""
    device = pdl.resolve_device(cfg.device)
    load = DATASETS[cfg.model][1]
    on_device = {"device": device} if load is pdl.load_cifar10 else {}  # a GPU decodes the packed JPEG copy
    train = load(cfg.data_root, train=True, download=cfg.download, **on_device).subset(cfg.train_subset)
    test = load(cfg.data_root, train=False, download=cfg.download, **on_device).subset(cfg.test_subset)
    return train.to(device), test.to(device)


def split_data(cfg: PipelineConfig, train: pdl.ArrayDataset) -> tuple[pdl.ArrayDataset, pdl.ArrayDataset]:
    """``(pretraining data, switch-fitting data)`` from the training set (module docstring)."""
    return train.split(cfg.holdout) if cfg.holdout else (train, train)  # holdout > 0 iff fit_data == "holdout"


def _model_kwargs(cfg: PipelineConfig) -> dict:
    return {"widths": list(cfg.widths)} if cfg.widths else {}


def _measure(net: nn.Module, test: pdl.ArrayDataset) -> dict:
    return {"error_pct": pdl.evaluate(net, test), **pdl.count_ops(net, net.input_shape), "params": pdl.count_params(net)}


def prune_to(net: nn.Module, scores: dict, counts: dict[str, int], links, test: pdl.ArrayDataset
             ) -> tuple[nn.Module, dict, dict]:
    """The one prune step every study shares: ``(smaller network, kept indices, {"architecture",
    "error_pct", "macs", "paper_flops", "params"})`` of ``net`` trimmed to ``counts`` by ``scores``."""
    keep = pdl.keep_indices(scores, counts, links)
    small = pdl.trim(net, keep, net.input_shape)
    return small, keep, {"architecture": pdl.format_architecture(counts), **_measure(small, test)}


def finetune_measured(small: nn.Module, train: pdl.ArrayDataset, test: pdl.ArrayDataset, recipe: pdl.TrainConfig,
                      checkpoint: Path | None = None, progress: bool = False, distill: pdl.Distill | None = None,
                      cpu_bf16: bool = False) -> dict:
    """The fine-tuning every study shares (``recipe``, seeded by ``recipe.seed``, resumable at
    ``checkpoint``, distilled from a teacher if ``distill``, bf16 on the CPU if ``cpu_bf16``): trains
    ``small`` in place; returns :func:`_measure`'s record after it (fp32)."""
    torch.manual_seed(recipe.seed)
    pdl.train(small, train, recipe, checkpoint=checkpoint, progress=progress, distill=distill, cpu_bf16=cpu_bf16)
    return _measure(small, test)


def pretrain(cfg: PipelineConfig, train: pdl.ArrayDataset, test: pdl.ArrayDataset) -> nn.Module:
    """Train the full network (or load it from ``cfg.pretrained_dir``)."""
    folder = cfg.pretrained_dir
    if complete(folder, "spec.json", "model.pt"):
        net, _ = pdl.load_pruned(folder, device=train.device)
        return net
    pretrain_data, fit_data = split_data(cfg, train)
    if cfg.holdout:
        save_json({"source_indices": fit_data.source.tolist()}, folder / "holdout.json")
    torch.manual_seed(cfg.pretrain.seed)
    net = build_model(cfg.model, **_model_kwargs(cfg)).to(train.device)
    pdl.train(net, pretrain_data, cfg.pretrain, checkpoint=folder / "train.ckpt", progress=cfg.progress)
    widths = pdl.site_sizes(net)
    spec = {"model": cfg.model, "model_kwargs": _model_kwargs(cfg), "input_shape": list(net.input_shape),
            "kept": {name: list(range(k)) for name, k in widths.items()}, "architecture": pdl.format_architecture(widths),
            **_measure(net, test), "train": asdict(cfg.pretrain)}
    pdl.save_pruned(net, spec, folder)
    return net


class PretrainedMismatch(ValueError):
    """A given pretrained folder is not one of this model and data set."""


def adopt_pretrained(cfg: PipelineConfig, source: str | Path) -> PipelineConfig:
    """Start ``cfg``'s run from a pretrained folder written by :func:`pretrain` elsewhere
    (``<dir>/{config.json, spec.json, model.pt}``, e.g. ``../shared/pretrained/...``).

    The folder must be of ``cfg.model`` with ``cfg.widths`` on ``cfg``'s data set (its
    ``config.json`` must hash to its folder name, so it is what it says); else
    :class:`PretrainedMismatch` names the difference. Returns ``cfg`` with the folder's
    pretraining settings (and subsets), so that ``cfg.pretrained_dir`` is the folder of the
    same key in ``cfg``'s run directory; its files are copied there once (atomically) with
    ``source.json`` recording where they came from and the SHA-256 of ``model.pt``.
    """
    source = Path(source)
    missing = [name for name in ("config.json", "spec.json", "model.pt") if not (source / name).is_file()]
    if missing:
        raise PretrainedMismatch(f"pretrained folder {source} lacks {', '.join(missing)}: give a folder written by the "
                                 "pretraining step (pretrained-<hash>/ with config.json, spec.json and model.pt)")
    given = load_json(source / "config.json")
    key = pdl.io.settings_key(given)
    expected = {"model": cfg.model, "widths": list(cfg.widths) if cfg.widths else None,
                "dataset": DATASETS[cfg.model][0]}
    found = {"model": given.get("model"), "widths": given.get("widths"), "dataset": given.get("data", {}).get("dataset")}
    if found != expected:
        diff = ", ".join(f"{k} {found[k]!r} (this run: {expected[k]!r})" for k in expected if found[k] != expected[k])
        raise PretrainedMismatch(f"pretrained folder {source} is not this run's network: {diff}; give a folder of "
                                 f"{cfg.model} on {expected['dataset']}, or train one here")
    if not source.name.endswith(key) or load_json(source / "spec.json").get("model") != cfg.model:
        raise PretrainedMismatch(f"pretrained folder {source}: its name does not end with the key {key} of its "
                                 "config.json, or spec.json names another model; it was edited or renamed: use the "
                                 "folder as the pretraining step wrote it")
    data = given["data"]
    if data.get("holdout", 0) != cfg.holdout:
        raise PretrainedMismatch(f"pretrained folder {source} held out {data.get('holdout', 0)} training examples, "
                                 f"this run {cfg.holdout}: use the same --holdout")
    adopted = replace(cfg, pretrain=pdl.TrainConfig(**given["train"]), train_subset=data.get("train_subset"),
                      test_subset=data.get("test_subset"))
    folder = adopted.pretrained_dir
    if not complete(folder, "spec.json", "model.pt"):
        for name in ("train.ckpt", "model.pt", "spec.json"):  # spec.json last: it marks the step done
            if (source / name).is_file():
                pdl.io.atomic_write(folder / name, lambda tmp, name=name: shutil.copyfile(source / name, tmp))
    record = {"source": str(source.resolve()), "model_sha256": file_sha256(source / "model.pt")}
    if (folder / "source.json").exists() and load_json(folder / "source.json")["model_sha256"] != record["model_sha256"]:
        raise PretrainedMismatch(f"{folder} already holds another {cfg.model} than {source} (model.pt differs): use "
                                 "another --run-dir")
    save_json(record, folder / "source.json")
    return adopted


def pretrained_source(cfg: PipelineConfig) -> dict | None:
    """Where ``cfg``'s pretrained network came from (:func:`adopt_pretrained`), or None if trained here."""
    path = cfg.pretrained_dir / "source.json"
    return load_json(path) if path.exists() else None


def fit(cfg: PipelineConfig, net: nn.Module, train: pdl.ArrayDataset):
    """Fit the switch posteriors of the zoo's sites (or load ``posterior.nc``); returns the InferenceData."""
    return fit_sites(cfg, net, train, net.prunable_layers, cfg.fit_dir)


def fit_sites(cfg: PipelineConfig, net: nn.Module, train: pdl.ArrayDataset, sites, folder: Path):
    """:func:`fit` of the switches on ``sites``, in ``folder``."""
    if complete(folder, "posterior.nc", "fit.json"):
        try:
            return pdl.load_idata(folder / "posterior.nc")
        except pdl.CheckpointError:  # corrupt: rebuilt below from the finished fit's checkpoint
            (folder / "posterior.nc").unlink()
    switched = pdl.SwitchedNetwork(net, sites, cfg.switch)
    guide, history = pdl.fit_switches(switched, split_data(cfg, train)[1], cfg.fit, checkpoint=folder / "switches.ckpt",
                                      progress=cfg.progress)
    idata = pdl.posterior_idata(guide, num_draws=1000, seed=cfg.fit.seed)
    save_text(pdl.summarize(idata).to_csv(), folder / "summary.csv")
    save_json({**cfg.fit_settings, "history": history, "fit_seconds": sum(h["seconds"] for h in history)},
              folder / "fit.json")
    pdl.posterior.plot_forests(idata, folder)
    pdl.save_idata(idata, folder / "posterior.nc")
    return idata


def prune(cfg: PipelineConfig, net: nn.Module, idata, test: pdl.ArrayDataset) -> nn.Module:
    """Trim the network to the target, keeping the channels with the highest posterior means."""
    folder = cfg.prune_dir
    if complete(folder, "spec.json", "model.pt"):
        return pdl.load_pruned(folder, device=test.device)[0]
    scores = pdl.posterior_means(idata)
    links = pdl.input_links(net, list(scores), net.input_shape)
    pruned, keep, measured = prune_to(net, scores, cfg.target.counts(net, scores, links), links, test)
    spec = {"model": cfg.model, "model_kwargs": _model_kwargs(cfg), "input_shape": list(net.input_shape),
            "kept": keep, "architecture": measured.pop("architecture"), "target": asdict(cfg.target), **measured}
    pdl.save_pruned(pruned, spec, folder)
    return pruned


def finetune(cfg: PipelineConfig, pruned: nn.Module, train: pdl.ArrayDataset, test: pdl.ArrayDataset) -> dict:
    """Fine-tune the pruned network; returns and writes ``result.json``."""
    folder = cfg.finetune_dir
    if complete(folder, "result.json", "model.pt", "spec.json"):
        return load_json(folder / "result.json")
    before = load_json(cfg.prune_dir / "spec.json")
    measured = finetune_measured(pruned, train, test, cfg.finetune, folder / "train.ckpt", cfg.progress)
    result = {"method": f"dirichlet-{cfg.fit.estimator}-{cfg.fit.mode}", "target": cfg.target.tag,
              "architecture": before["architecture"], "error_pruned_pct": before["error_pct"], **measured,
              "fit_seconds": load_json(cfg.fit_dir / "fit.json")["fit_seconds"]}
    pdl.save_pruned(pruned, {**before, **result}, folder)
    save_json(result, folder / "result.json")
    return result


def baseline(cfg: PipelineConfig) -> dict:
    """``{"error_pct", "macs", "paper_flops", "params"}`` of the pretrained full network."""
    spec = load_json(cfg.pretrained_dir / "spec.json")
    return {k: spec[k] for k in ("error_pct", "macs", "paper_flops", "params")}


def run(cfg: PipelineConfig) -> dict:
    """All four steps; returns ``{"baseline": {...}, "run": {...}, "folder": ..., "wall_seconds": ...}``."""
    t0 = time.perf_counter()
    train, test = load_data(cfg)
    net = pretrain(cfg, train, test)
    idata = fit(cfg, net, train)
    pruned = prune(cfg, net, idata, test)
    result = finetune(cfg, pruned, train, test)
    return {"baseline": baseline(cfg), "run": result, "folder": str(cfg.finetune_dir),
            "wall_seconds": time.perf_counter() - t0}
