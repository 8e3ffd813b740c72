"""The testbed study (benchmarks/airbench_study.py) from its one command, end to end on a narrow
airbench94 and a subset: every row before fine-tuning, the best pair fine-tuned, the report written;
a second run recomputes nothing."""
import importlib.util
import json
import sys
from pathlib import Path

import torch

import pyro_dirichlet as pdl
from pyro_dirichlet.models import build_model

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "airbench_study.py"


def test_the_study_runs_from_one_command_and_resumes(cifar_root, tmp_path, monkeypatch):
    monkeypatch.setenv("PYRO_DIRICHLET_DATA", str(cifar_root))
    sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("airbench_study", SCRIPT)
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    torch.manual_seed(0)
    widths = [8, 8, 16, 16, 16, 16]
    net = build_model("airbench94", widths=widths)
    sizes = pdl.site_sizes(net)
    pdl.save_pruned(net, {"model": "airbench94", "model_kwargs": {"widths": widths}, "input_shape": [3, 32, 32],
                          "kept": {k: list(range(v)) for k, v in sizes.items()},
                          "architecture": pdl.format_architecture(sizes)}, tmp_path / "pretrained")
    argv = ["--pretrained", str(tmp_path / "pretrained"), "--run-dir", str(tmp_path / "runs"), "--results",
            str(tmp_path / "results"), "--train-subset", "1100", "--test-subset", "100", "--score-subset", "100",
            "--validation", "300",
            "--finetune-rows", "best-pair", "--finetune-epochs", "1", "--no-progress"]
    result = study.main(argv)
    assert len(result["rows"]) == len(study.rows())
    tuned = [r for r in result["rows"] if r["finetuned"]]
    assert {r["row"]["budget"] for r in tuned} == {2.0, 4.0} and len(tuned) == 4
    assert all(len(r["finetuned"]) == 5 and {f["epochs"] for f in r["finetuned"]} == {1} for r in tuned)
    saved = json.loads((tmp_path / "results" / "results.json").read_text())
    assert saved["summary"]["2x"]["1"]["dirichlet_vs_best_baseline"]["seeds"] == 5
    before = sorted(p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("*.json"))
    assert study.main(argv)["rows"] == result["rows"]
    assert sorted(p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("*.json")) == before
