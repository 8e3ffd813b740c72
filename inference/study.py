"""Studies as data: a :class:`Study` is a list of frozen :class:`Row` specs (ranking x allocation x
budget) over one pretrained network, with one fit, one fine-tuning recipe and one set of seeds;
:func:`run_study` runs them all, cached and resumable; :mod:`.study_report` writes the results.

Folder (every name keyed by the settings that make it, so a changed setting never reuses a result):

    <run_dir>/study-<h>/scores-<ranking>.pt         per-channel scores (a ranking is computed once)
    <run_dir>/study-<h>/curves-<ranking>-<k>.json   a likelihood allocation's cut curves or path (once a ranking)
    <run_dir>/study-<h>/rows/<row>.json             counts, MACs, params, errors before fine-tuning
    <run_dir>/study-<h>/rows/<row>/ft<E>-s<seed>.json   errors after E epochs of fine-tuning, seed
    <run_dir>/study-<h>/ckpt/<row>-ft<E>-s<seed>.ckpt   the fine-tuning's checkpoint (resumes a kill)

``study-<h>`` is keyed by everything but the rows, so adding a row reuses every score; ``<ranking>``
and ``<row>`` names carry a key of their criterion's and allocation's own settings (their repr),
so a changed default (e.g. tp-hessian's examples, the likelihood's grid) recomputes only what it touches. Work runs
cheapest first: every row before fine-tuning, then each fine-tuning length, seed by seed, for every row.
Errors: on the validation split (held out from training, seed ``split_seed``; configurations are
chosen there) and on the test set (reported).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

import pyro_dirichlet as pdl
from pyro_dirichlet.allocations import ALLOCATIONS, Stateful
from pyro_dirichlet.criteria import CRITERIA, ChannelScores, Dirichlet
from pyro_dirichlet.io import (complete, file_sha256, keyed_folder, load_json, load_torch, save_json, save_torch,
                               settings_key)

DATASETS: dict[str, Callable[[bool], pdl.ArrayDataset]] = {
    "cifar10": lambda train: pdl.load_cifar10(train=train, download=False),
    "mnist": lambda train: pdl.load_mnist(train=train, download=False),
}


@dataclass(frozen=True)
class Row:
    """One configuration: ``ranking`` (a ``CRITERIA`` name) orders the channels inside each site;
    ``allocation`` (an ``ALLOCATIONS`` name, or ``"<ranking>/<allocation>"``: that row's counts at
    the same budget) sets how many each site keeps; ``budget``: MACs reduced this many times."""
    ranking: str
    allocation: str
    budget: float

    def __post_init__(self):
        own = self.allocation.split("/")[-1]
        if self.ranking not in CRITERIA or own not in ALLOCATIONS or self.budget < 1:
            raise ValueError(f"row {self}: ranking must be one of {sorted(CRITERIA)}, allocation one of "
                             f"{sorted(ALLOCATIONS)} (or '<ranking>/<allocation>'), budget >= 1")

    @property
    def name(self) -> str:
        return f"{self.ranking}@{self.allocation.replace('/', '-')}@{self.budget:g}x"

    def counts_source(self) -> "Row | None":
        """The row whose counts this one takes (None: its own allocation)."""
        if "/" not in self.allocation:
            return None
        ranking, allocation = self.allocation.split("/")
        return Row(ranking, allocation, self.budget)


@dataclass(frozen=True)
class Study:
    """Settings shared by every row (module docstring); ``pretrained``: a folder with ``spec.json``
    and ``model.pt`` (:func:`pyro_dirichlet.save_pruned`)."""
    name: str
    dataset: str
    pretrained: str
    rows: tuple[Row, ...]
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    finetune_epochs: tuple[int, ...] = (1, 3, 10)
    finetune: pdl.TrainConfig = field(default_factory=pdl.TrainConfig)
    fit: pdl.FitConfig = field(default_factory=pdl.FitConfig)
    switch: pdl.SwitchConfig = field(default_factory=pdl.SwitchConfig)
    score_subset: int = 10_000
    validation: int = 5_000
    split_seed: int = 1
    train_subset: int | None = None
    test_subset: int | None = None

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ValueError(f"study {self.name!r}: dataset must be one of {sorted(DATASETS)}, got {self.dataset!r}")
        if not (Path(self.pretrained) / "spec.json").is_file():
            raise FileNotFoundError(f"study {self.name!r}: no pretrained network at {self.pretrained} (it needs "
                                    "spec.json and model.pt, as the pretraining step writes them)")

    def settings(self) -> dict:
        """What the study's folder is keyed by: everything but its name and rows, with the pretrained
        weights' hash."""
        out = asdict(self)
        del out["name"], out["rows"]
        out["pretrained_sha256"] = file_sha256(Path(self.pretrained) / "model.pt")
        return out


def ranking_tag(ranking: str) -> str:
    """``<ranking>-<key of the criterion's settings>``: the name its scores are cached under."""
    return f"{ranking}-{settings_key(repr(CRITERIA[ranking]))}"


def row_tag(row: Row) -> str:
    """``<row name>-<key>``, keyed by its ranking's and allocation's settings (and its counts source's)."""
    source = row.counts_source()
    own = [ranking_tag(row.ranking), repr(ALLOCATIONS[row.allocation.split("/")[-1]]), source and row_tag(source)]
    return f"{row.name}-{settings_key(own)}"


@dataclass
class Data:
    train: pdl.ArrayDataset
    val: pdl.ArrayDataset
    test: pdl.ArrayDataset
    scores: pdl.ArrayDataset  # the subset of train the criteria, the fit and the likelihood read


def load_data(study: Study) -> Data:
    train, val = DATASETS[study.dataset](True).split(study.validation, seed=study.split_seed)
    train = train.subset(study.train_subset)
    return Data(train, val, DATASETS[study.dataset](False).subset(study.test_subset), train.subset(study.score_subset))


class Runner:
    """Runs a study's rows into its keyed folder (module docstring)."""

    def __init__(self, study: Study, run_dir: str | Path = "runs", progress: bool = True):
        self.study, self.progress = study, progress
        self.folder = keyed_folder(Path(run_dir) / study.name, "study", study.settings())
        self.data = load_data(study)
        self.net, self.spec = pdl.load_pruned(study.pretrained)
        self.pruner = pdl.Pruner(self.net, list(pdl.site_sizes(self.net)))

    def scores(self, ranking: str) -> ChannelScores:
        path = self.folder / f"scores-{ranking_tag(ranking)}.pt"
        criterion = CRITERIA[ranking]
        if ranking == "dirichlet":
            criterion = Dirichlet(self.study.fit, self.study.switch, str(self.folder / "fit-dirichlet.ckpt"))
        if path.exists():
            state = load_torch(path)
            return ChannelScores(state["scores"], criterion.normalisation, self.net)
        start = time.perf_counter()
        scores = criterion(self.net, self.pruner.sites, self.data.scores, seed=0)
        if scores.network is not self.net:
            raise ValueError(f"{ranking} retrains the network; a study prunes its pretrained network as it is")
        save_torch({"scores": dict(scores), "seconds": time.perf_counter() - start}, path)
        return scores

    def counts(self, row: Row) -> dict[str, int]:
        source = row.counts_source()
        if source is not None:
            return self.before(source)["counts"]
        budget, p = int(self.pruner.macs / row.budget), self.pruner
        allocation = ALLOCATIONS[row.allocation]
        if isinstance(allocation, Stateful):  # its state does not depend on the budget: computed once
            return allocation.counts(self.net, self.curves(row.ranking, allocation), p.sizes, budget, p.example, p.links)
        return p.counts(self.scores(row.ranking), budget, row.allocation, data=self.data.scores)

    def curves(self, ranking: str, allocation: Stateful):
        """The allocation's budget-free state for ``ranking``'s scores (computed once)."""
        path = self.folder / f"curves-{ranking_tag(ranking)}-{settings_key(repr(allocation))}.json"
        if not path.exists():
            save_json(allocation.state(self.net, self.scores(ranking), self.data.scores, self.pruner.example,
                                       self.pruner.links), path)
        return load_json(path)

    def pruned(self, ranking: str, counts: dict[str, int]) -> torch.nn.Module:
        """The network trimmed to ``counts``, keeping each site's best channels by ``ranking``."""
        return self.pruner.trim(self.scores(ranking), counts)

    def before(self, row: Row) -> dict:
        """The row's record before fine-tuning (computed once)."""
        path = self.folder / "rows" / f"{row_tag(row)}.json"
        if path.exists():
            return load_json(path)
        counts = self.counts(row)
        small = self.pruned(row.ranking, counts)
        record = {"row": asdict(row), "name": row.name, "counts": counts,
                  "architecture": pdl.format_architecture(counts), "macs": pdl.count_macs(small, self.pruner.example),
                  "params": pdl.count_params(small), "val_error": pdl.evaluate(small, self.data.val),
                  "test_error": pdl.evaluate(small, self.data.test),
                  "score_seconds": load_torch(self.folder / f"scores-{ranking_tag(row.ranking)}.pt").get("seconds")}
        save_json(record, path)
        return record

    def finetuned(self, row: Row, epochs: int, seed: int) -> dict:
        path = self.folder / "rows" / row_tag(row) / f"ft{epochs}-s{seed}.json"
        if complete(path.parent, path.name):
            return load_json(path)
        small = self.pruned(row.ranking, self.before(row)["counts"])
        recipe = replace(self.study.finetune, epochs=epochs, seed=seed)
        torch.manual_seed(seed)
        start = time.perf_counter()
        pdl.train(small, self.data.train, recipe, checkpoint=self.folder / "ckpt" / f"{row_tag(row)}-ft{epochs}-s{seed}.ckpt",
                  progress=self.progress)
        record = {"epochs": epochs, "seed": seed, "val_error": pdl.evaluate(small, self.data.val),
                  "test_error": pdl.evaluate(small, self.data.test), "seconds": time.perf_counter() - start}
        save_json(record, path)
        return record

    def run(self, finetune: bool | Collection[str] = True, after_each: Callable[[dict], None] | None = None,
            lengths: Collection[int] | None = None) -> dict:
        """Every row before fine-tuning, then each length (of ``lengths``, default the study's) for every
        row (``finetune``: True, or the names of the rows to fine-tune) and seed; returns ``{"study", "folder", "settings", "full",
        "rows": [record + {"finetuned": [...]}]}``, also given to ``after_each`` after every new fine-tuning."""
        full = {"architecture": self.spec.get("architecture"), "macs": self.pruner.macs,
                "params": pdl.count_params(self.net), "val_error": pdl.evaluate(self.net, self.data.val),
                "test_error": pdl.evaluate(self.net, self.data.test)}
        records = {row.name: {**self.before(row), "finetuned": []} for row in self.study.rows}
        result = {"study": self.study.name, "folder": str(self.folder), "settings": self.study.settings(),
                  "full": full, "rows": list(records.values())}
        tuned = [row for row in self.study.rows if finetune is True or (finetune and row.name in finetune)]
        unknown = set(lengths or ()) - set(self.study.finetune_epochs)
        if unknown:
            raise ValueError(f"fine-tuning lengths {sorted(unknown)} are not the study's {self.study.finetune_epochs}")
        for epochs in [e for e in self.study.finetune_epochs if lengths is None or e in lengths]:  # seed-major: every row's first seeds before any row's last
            for seed in self.study.seeds:
                for row in tuned:
                    records[row.name]["finetuned"].append(self.finetuned(row, epochs, seed))
                    if after_each is not None:
                        after_each(result)
        return result


def run_study(study: Study, run_dir: str | Path = "runs", finetune: bool | Collection[str] = True,
              progress: bool = True, after_each: Callable[[dict], None] | None = None,
              lengths: Collection[int] | None = None) -> dict:
    return Runner(study, run_dir, progress).run(finetune, after_each, lengths)
