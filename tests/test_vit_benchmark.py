"""The ViT study (benchmarks/vit.py) end to end on a tiny stand-in: one block, a subset."""
import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

pytest.importorskip("timm")
SCRIPT = Path(__file__).parents[1] / "benchmarks" / "vit.py"


def load_script():
    spec = importlib.util.spec_from_file_location("vit", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["vit"] = module
    spec.loader.exec_module(module)
    return module


def test_vit_study_runs_end_to_end(mnist_root, tmp_path):
    study = load_script()
    argv = ["--depth", "1", "--train-subset", "512", "--test-subset", "256", "--pretrain-epochs", "1",
            "--fit-epochs", "1", "--fit-subset", "256", "--finetune-epochs", "1", "--data-root", mnist_root,
            "--run-dir", str(tmp_path / "run"), "--results", str(tmp_path / "results"),
            "--forest-site", "blocks.0.attn:heads"]
    study.main(argv)
    report = json.loads((tmp_path / "results" / "vit_mnist.json").read_text())
    assert [(r["allocation"], r["method"]) for r in report["runs"]] == [
        (allocation, method) for allocation in study.ALLOCATIONS for method in ["dirichlet-mean-rKs", "dirichlet-mean", *study.BASELINES]
        + (["dirichlet-mean-rKs-sequential"] if allocation != "per-mac" else [])]
    by_score = {r["method"]: r["counts"] for r in report["runs"] if r["allocation"] == "by-score"}
    assert by_score["dirichlet-mean-rKs-sequential"] == by_score["dirichlet-mean-rKs"]  # its layer-by-layer fit's
    uniform = [r["counts"] for r in report["runs"] if r["allocation"] == "uniform"]
    assert all(c == uniform[0] for c in uniform)  # one architecture, only the rankings differ
    for r in report["runs"]:
        assert r["macs"] <= report["budget_macs"] < report["full"]["macs"] and r["params"] < report["full"]["params"]
        assert set(r["latency"]) == {"cpu_b1_ms", "cpu_b256_ms"} and 0 <= r["error_pct"] <= 100
        assert 1 <= r["counts"]["blocks.0.attn:heads"] <= 4 and len(r["heads_kept"]["blocks.0.attn:heads"]) == \
            r["counts"]["blocks.0.attn:heads"]
    assert len(report["forest"]["mean"]) == 4 and (tmp_path / "results" / "vit_mnist_forest_heads.png").is_file()
    forms = study.main(argv + ["--forms", "rKs,Ks", "--finetune-seeds", "1,2"])  # the same run folder: the network and the rKs fit are reused
    assert [r["method"] for r in forms["rows"]][:2] == ["dirichlet-mean, form rKs, r 0.5, alpha0 0.5",
                                                        "dirichlet-mean, form Ks, alpha0 0.5"]
    assert all(0 <= r["error_pruned_pct"] <= 100 for r in forms["rows"])
    assert forms["rows"][2]["method"] == "dirichlet-mean, form rKs, r 0.5, alpha0 0.5, each site fitted with the " \
        "earlier ones pruned"
    assert ["error_pct" in r for r in forms["rows"][:6]] == [True, False, True, True, True, False]  # fine-tuned
    for r in forms["rows"][:6]:
        if "error_pct" in r:  # the mean over the two seeds' fine-tuning
            assert list(r["error_pct_by_seed"]) == [1, 2] and r["error_pct"] == pytest.approx(
                sum(r["error_pct_by_seed"].values()) / 2)
    folders = list((tmp_path / "run").glob("*/sequential-*"))  # one per architecture, the forms report's reused
    assert len(folders) == len({json.dumps(c) for c in (uniform[0], by_score["dirichlet-mean-rKs"])})
    assert all(len(list(f.glob("site-*.ckpt"))) == 2 for f in folders)  # one fit per site
    oracle, kept = forms["head_oracle"], forms["counts"]["blocks.0.attn:heads"]
    assert len(oracle["errors"]["blocks.0.attn:heads"]) == math.comb(4, kept)  # every subset, each once
    for ranks in (oracle["ranks"], oracle["ranks_in_context"]):
        assert set(ranks) == {"rKs", "Ks", "rKs sequential", "tp-taylor", "tp-magnitude", "random"}
        assert all(1 <= r <= math.comb(4, kept) for block in ranks.values() for r in block)
    joint = study.main(argv + ["--forms", "cap", "--fit-mode", "joint"])  # a new fit, keyed by its mode
    assert joint["rows"][0]["method"] == "dirichlet-mean, form cap, r 0.5, alpha0 0.5, joint fit"
    assert len(list((tmp_path / "run").glob("*/fit-1-cap-joint-r0.5.json"))) == 1
    study.main(argv + ["--rows", "uniform:tp-taylor,by-score:tp-magnitude", "--finetune-seeds", "1,2"])
    rows = json.loads((tmp_path / "results" / "vit_mnist.json").read_text())["runs"]
    assert [(r["allocation"], r["method"]) for r in rows] == [("by-score", "tp-magnitude"), ("uniform", "tp-taylor")]
    first = {(r["allocation"], r["method"]): r["error_pct"] for r in report["runs"]}
    for r in rows:  # seed 1 is the first run's network (one checkpoint per kept channels and recipe), seed 2 is new
        assert list(r["error_pct_by_seed"]) == ["1", "2"] and r["error_pct_by_seed"]["1"] == first[r["allocation"], r["method"]]
    with pytest.raises(SystemExit, match="--rows uniform:nope: no such row; the rows are per-mac:dirichlet-mean-rKs"):
        study.main(argv + ["--rows", "uniform:nope"])
    study.main(argv + ["--rows", "by-score:dirichlet-mean-rKs-sequential", "--sequential-counts-of", "tp-magnitude"])
    [row] = json.loads((tmp_path / "results" / "vit_mnist.json").read_text())["runs"]
    assert row["counts"] == by_score["tp-magnitude"]  # fitted and pruned at magnitude's architecture
    with pytest.raises(SystemExit, match="--sequential-counts-of nope: no such method; the methods are dirichlet-mean"):
        study.main(argv + ["--sequential-counts-of", "nope"])
