"""The study layer end to end on a tiny MNIST study: rows run, resume without recomputing,
a changed setting gets its own folder, and the report pairs seeds with an interval."""
import json
import os
from dataclasses import replace

import pytest
import torch

import pyro_dirichlet as pdl
from pyro_dirichlet.allocations import ALLOCATIONS, channel_worth
from pyro_dirichlet.inference.study import Row, Study, run_study
from pyro_dirichlet.inference.study_report import write_report
from pyro_dirichlet.models import build_model


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, mnist_root):
    torch.manual_seed(0)
    net = build_model("lenet5")
    pdl.train(net, pdl.load_mnist(mnist_root).subset(2000), pdl.TrainConfig(epochs=1), progress=False)
    folder = tmp_path_factory.mktemp("pretrained")
    sizes = pdl.site_sizes(net)
    pdl.save_pruned(net, {"model": "lenet5", "input_shape": list(net.input_shape),
                          "kept": {k: list(range(v)) for k, v in sizes.items()},
                          "architecture": pdl.format_architecture(sizes)}, folder)
    return str(folder)


def tiny(pretrained, **kwargs):
    rows = (Row("dirichlet", "likelihood", 4.0), Row("l1", "by-score", 4.0), Row("random", "dirichlet/likelihood", 4.0))
    return Study(name="tiny", dataset="mnist", pretrained=pretrained, rows=rows, seeds=(0, 1), finetune_epochs=(1,),
                 finetune=pdl.TrainConfig(epochs=1, batch_size=100), fit=pdl.FitConfig(epochs=1),
                 score_subset=300, validation=300, train_subset=500, test_subset=300, **kwargs)


def test_study_runs_resumes_and_reports(pretrained, tmp_path):
    study = tiny(pretrained)
    result = run_study(study, tmp_path, progress=False)
    rows = {r["name"]: r for r in result["rows"]}
    assert set(rows) == {"dirichlet@likelihood@4x", "l1@by-score@4x", "random@dirichlet-likelihood@4x"}
    full_macs = result["full"]["macs"]
    for r in rows.values():
        assert r["macs"] <= full_macs / 4 and len(r["finetuned"]) == 2
        assert all(0 <= ft["test_error"] <= 100 for ft in r["finetuned"])
    assert rows["random@dirichlet-likelihood@4x"]["counts"] == rows["dirichlet@likelihood@4x"]["counts"]
    # a rerun reads every record and recomputes nothing
    files = sorted(p for p in (tmp_path / "tiny").rglob("*.json"))
    stamps = [os.stat(p).st_mtime_ns for p in files]
    again = run_study(study, tmp_path, progress=False)
    assert [os.stat(p).st_mtime_ns for p in files] == stamps and again["rows"] == result["rows"]
    # another setting, another folder
    other = run_study(replace(study, rows=study.rows[1:2], seeds=(0,)), tmp_path, finetune=False, progress=False)
    assert other["folder"] != result["folder"]
    summary = write_report(result, tmp_path / "report", "test")
    entry = summary["4x"][1]
    assert entry["best"]["dirichlet"] == "dirichlet@likelihood@4x"
    d = entry["dirichlet_vs_best_baseline"]
    assert d["seeds"] == 2 and d["low"] <= d["mean"] <= d["high"]
    saved = json.loads((tmp_path / "report" / "results.json").read_text())
    assert saved["summary"]["4x"]["1"]["dirichlet_vs_best_baseline"]["mean"] == pytest.approx(d["mean"])
    assert "paired seed(s), 95% interval" in (tmp_path / "report" / "results.md").read_text()


def test_rows_refuse_unknown_names(pretrained):
    with pytest.raises(ValueError, match="allocation one of"):
        Row("l1", "per-layer", 2.0)
    with pytest.raises(FileNotFoundError, match="no pretrained network"):
        replace(tiny(pretrained), pretrained="/nonexistent")


def test_channel_worth_is_non_increasing_and_follows_the_curve():
    worth = channel_worth({2: -5.0, 4: -1.0, 8: -0.5}, 8)
    assert torch.all(worth[1:] <= worth[:-1])
    assert worth[2:4].tolist() == [2.0, 2.0] and worth[4:].tolist() == [0.125] * 4


def test_likelihood_allocation_keeps_what_the_likelihood_needs(mnist_root):
    """On a trained LeNet-5 the fc1 units are cheap to cut and conv1 dear: at a quarter of the MACs
    the likelihood allocation fits the budget, keeps every floor, and differs from the uniform share."""
    torch.manual_seed(0)
    net = build_model("lenet5")
    data = pdl.load_mnist(mnist_root).subset(1500)
    pdl.train(net, data, pdl.TrainConfig(epochs=1), progress=False)
    scores = pdl.CRITERIA["l1"](net, net.prunable_layers, data)
    budget = pdl.count_macs(net, net.input_shape) // 4
    links = pdl.input_links(net, net.prunable_layers, net.input_shape)
    counts = ALLOCATIONS["likelihood"](net, scores, budget, links=links, data=data.subset(500))
    assert pdl.mac_model(net, list(counts))(counts) <= budget
    assert all(counts[s] >= max(1, round(0.1 * len(v))) for s, v in scores.items())
    assert counts != ALLOCATIONS["uniform"](net, scores, budget, links=links)


def test_likelihood_path_cuts_the_cheapest_site_and_fills_the_budget(mnist_root):
    """The path's first step is the site whose cut loses the least log-likelihood per MAC saved
    (recomputed here for every site), the path only ever shrinks, and a budget's counts fit it
    while one more channel of the last-cut site would not."""
    from pyro_dirichlet.allocations import LikelihoodPath, keep_indices, log_likelihood
    torch.manual_seed(0)
    net = build_model("lenet5")
    data = pdl.load_mnist(mnist_root).subset(1500)
    pdl.train(net, data, pdl.TrainConfig(epochs=1), progress=False)
    sites = ["conv1", "conv2", "fc1"]
    scores = pdl.CRITERIA["l1"](net, sites, data)
    allocation = LikelihoodPath(steps=4, examples=300)
    state = allocation.state(net, scores, data)
    macs = [point["macs"] for point in state]
    assert macs == sorted(macs, reverse=True) and len(set(macs)) == len(macs)
    sizes = {s: len(v) for s, v in scores.items()}
    assert state[0]["counts"] == sizes and state[-1]["counts"] == pdl.allocation.floor_counts(sizes)
    held = data.subset(300)

    def loss_per_mac(site):
        cut = {**sizes, site: sizes[site] - round(sizes[site] / 4)}
        small = pdl.trim(net, keep_indices(scores, cut), net.input_shape)
        return (state[0]["ll"] - log_likelihood(small, held)) / (macs[0] - pdl.mac_model(net, sites)(cut))
    first = next(s for s in sites if state[1]["counts"][s] != sizes[s])
    assert loss_per_mac(first) == pytest.approx(min(loss_per_mac(s) for s in sites), rel=1e-4)
    budget = macs[0] // 3
    counts = allocation.counts(net, state, sizes, budget)
    model = pdl.mac_model(net, sites)
    assert model(counts) <= budget
    i = next(i for i, m in enumerate(macs) if m <= budget)
    last = next(s for s in sites if state[i]["counts"][s] != state[i - 1]["counts"][s])
    assert {s: k for s, k in counts.items() if s != last} == {s: k for s, k in state[i]["counts"].items() if s != last}
    assert model({**counts, last: counts[last] + 1}) > budget  # the last-cut site is cut only as far as needed
    assert counts == ALLOCATIONS["likelihood-path"].counts(net, state, sizes, budget)


def test_run_and_report_fine_tunes_the_rows_it_names(pretrained, tmp_path):
    from pyro_dirichlet.inference.study_report import run_and_report

    study = replace(tiny(pretrained), rows=tiny(pretrained).rows + (Row("dirichlet", "uniform", 4.0),
                                                                   Row("l1", "uniform", 4.0)))
    result = run_and_report(study, tmp_path / "report", "test", "dirichlet+best-before", run_dir=tmp_path,
                            progress=False)
    tuned = {r["name"] for r in result["rows"] if r["finetuned"]}
    best_l1 = min((r for r in result["rows"] if r["row"]["ranking"] == "l1"), key=lambda r: r["val_error"])["name"]
    assert tuned == {"dirichlet@likelihood@4x", "dirichlet@uniform@4x", best_l1, "random@dirichlet-likelihood@4x"}
    saved = json.loads((tmp_path / "report" / "results.json").read_text())
    assert sum(len(r["finetuned"]) for r in saved["rows"]) == 2 * len(tuned)


def test_best_pair_fine_tunes_the_best_dirichlet_and_baseline_rows_for_the_lengths_asked(pretrained, tmp_path):
    from pyro_dirichlet.inference.study_report import run_and_report

    study = replace(tiny(pretrained), rows=tiny(pretrained).rows + (Row("dirichlet", "uniform", 4.0),),
                    finetune_epochs=(1, 2))
    result = run_and_report(study, tmp_path / "report", "test", "best-pair", run_dir=tmp_path, progress=False,
                            lengths=(1,))
    by_val = sorted(result["rows"], key=lambda r: r["val_error"])
    best_d = next(r["name"] for r in by_val if r["row"]["ranking"] == "dirichlet")
    best_b = next(r["name"] for r in by_val if r["row"]["ranking"] != "dirichlet")
    assert {r["name"] for r in result["rows"] if r["finetuned"]} == {best_d, best_b}
    assert {f["epochs"] for r in result["rows"] for f in r["finetuned"]} == {1}
    with pytest.raises(ValueError, match=r"lengths \[3\]"):
        run_and_report(study, tmp_path / "report", "test", "best-pair", run_dir=tmp_path, progress=False, lengths=(3,))
