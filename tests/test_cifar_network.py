"""The GPU kit's one-command study (benchmarks/cifar10_network.py), as a CPU smoke run on a narrow VGG-16."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

import pyro_dirichlet as pdl
from pyro_dirichlet.models import build_model

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "cifar10_network.py"


def load_script():
    spec = importlib.util.spec_from_file_location("cifar10_network", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["cifar10_network"] = module  # a dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def test_one_command_runs_the_whole_study(cifar_root, tmp_path):
    study = load_script()
    argv = ["--model", "vgg16", "--widths", "8", "--train-subset", "512", "--test-subset", "256",
            "--pretrain-epochs", "1", "--fit-epochs", "1", "--finetune-epochs", "1", "--budget-macs", "300000",
            "--budget-params", "3000", "--device", "cpu", "--data-root", cifar_root, "--run-dir", str(tmp_path / "run"),
            "--results", str(tmp_path / "results"), "--no-progress", "--time-budget", "3600"]
    report = study.main(argv)
    plan = report["time_plan"]  # measured, and one epoch each fits an hour
    assert (plan["pretrain_epochs"], plan["finetune_epochs"]) == (1, 1) and plan["speed"]["train_s_per_image"] > 0
    assert plan["work"]["fit_passes"] == 15 * (1 + 4) and plan["work"]["finetunes"] == 4
    assert json.loads((tmp_path / "results" / "cifar10_vgg16.json").read_text()) == json.loads(json.dumps(report))
    assert [r["method"] for r in report["runs"]] == list(study.METHODS)
    for r in report["runs"]:
        assert r["macs"] <= 300_000 and r["params"] <= 3_000 and 0 <= r["error_pct"] <= 100
        assert set(r["latency"]) == {"cpu_b1_ms", "cpu_b256_ms"} and r["mac_ratio"] > 4
    assert set(report["baseline"]["latency"]) == {"cpu_b1_ms", "cpu_b256_ms"} and report["dataset"].startswith("cifar10")
    onnx = report["onnx"]
    assert "skipped" in onnx or (onnx["max_abs_diff"] < 1e-4 and onnx["same_predictions"]
                                 and Path(onnx["file"]).stat().st_size == onnx["bytes"]  # weights inside, not beside
                                 and not list(Path(onnx["file"]).parent.glob("*.data")))
    assert len(report["figure2"]["top10"]) == 8  # every channel of the 8-wide first layer, in posterior order
    training = json.loads((tmp_path / "results" / "cifar10_training.json").read_text())  # the pretraining's speed
    assert training["epochs"] == 1 and training["images_per_second"] > 0 and training["model"] == "vgg16"
    assert training["test_error_pct"] == report["baseline"]["error_pct"]
    for name in ("cifar10_vgg16_figure2.png", "cifar10_vgg16_forest-conv1.png", "cifar10_vgg16.md"):
        assert (tmp_path / "results" / name).stat().st_size > 1000
    again = study.main(argv)  # every step resumes: the same networks, errors and counts
    assert [(r["architecture"], r["error_pct"]) for r in again["runs"]] == [
        (r["architecture"], r["error_pct"]) for r in report["runs"]] and again["time_plan"] == plan
    fewer = study.main([*argv, "--fit-subset", "256", "--methods", "dirichlet-mean"])  # a new fit, never the old one
    assert len(list((tmp_path / "run").glob("pretrained-*/fit-mean-layers-*"))) == 2
    assert fewer["config"]["fit_subset"] == 256 and report["config"]["fit_subset"] == 10_000
    floor = study.main([*argv, "--methods", "dirichlet-mean", "--min-keep", "0.375"])  # a new allocation, never the old folder
    counts = [int(c) for c in floor["runs"][0]["architecture"].split("-")]
    assert min(counts) >= 3 and counts != [int(c) for c in report["runs"][0]["architecture"].split("-")]
    assert floor["config"]["min_keep"] == 0.375 and "per-layer floor 0.375" in (tmp_path / "results" / "cifar10_vgg16.md").read_text()


def test_the_supplement_tables_budgets():
    study = load_script()
    a = study.parse(["--model", "resnet56"])  # Table 4: at least 2.5x fewer MACs; the paper's 6-11-16 too
    net = build_model("resnet56")
    macs, params = study.budgets(a, net)
    assert pdl.count_macs(net, net.input_shape) / macs >= 2.5 and params is None and a.arch == "6-11-16"
    a = study.parse(["--model", "wrn28_10"])  # Table 3: at least 60% of the parameters removed
    net = build_model("wrn28_10")
    assert study.budgets(a, net) == (pdl.count_macs(net, net.input_shape), int(0.4 * pdl.count_params(net)))
    with pytest.raises(SystemExit):
        study.parse(["--methods", "l9"])
    a = study.parse(["--model", "resnet56", "--arch", "6-11-16,8-16-32"])  # several: one run each, same scores
    assert study.archs(a) == ["6-11-16", "8-16-32"] and study.archs(study.parse(["--arch", "none"])) == []


def test_a_time_budget_too_small_is_refused_and_the_measurements_come_back(cifar_root, tmp_path, capsys):
    study = load_script()
    argv = ["--model", "vgg16", "--widths", "4", "--train-subset", "512", "--test-subset", "128", "--device", "cpu",
            "--budget-macs", "100000", "--data-root", cifar_root, "--run-dir", str(tmp_path / "run"),
            "--results", str(tmp_path / "results"), "--no-progress", "--time-budget", "30"]  # 30 s < 40 s fixed
    with pytest.raises(SystemExit, match="--time-budget 30 s: one pretraining and one fine-tuning epoch"):
        study.main(argv)
    record = json.loads((tmp_path / "results" / "cifar10_vgg16_time_plan.json").read_text())
    assert record["speed"]["train_s_per_image"] > 0 and record["needed_seconds"] > 30 and "refused" in record
    assert not list((tmp_path / "run").glob("pretrained-*"))  # nothing trained


def test_an_architecture_that_does_not_fit_is_refused_before_any_training(capsys):
    study = load_script()
    with pytest.raises(SystemExit):  # the paper's 6-11-16 on a ResNet-56 4 channels wide
        study.parse(["--model", "resnet56", "--widths", "4"])
    assert "--arch 6-11-16: architecture '6-11-16'" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # of several, the one that does not fit is named
        study.parse(["--model", "resnet56", "--arch", "6-11-16,8-16-99"])  # stage 3 has 64 channels at most
    assert "--arch 8-16-99" in capsys.readouterr().err
    assert study.parse(["--model", "resnet56", "--widths", "4", "--arch", "2-3-4"]).widths == (4,) * 27
    with pytest.raises(SystemExit):  # a floor that is not a share, before any training
        study.parse(["--model", "resnet56", "--min-keep", "2"])
    assert "--min-keep is the share of each layer's channels" in capsys.readouterr().err


def test_the_study_refuses_a_pretrained_folder_of_another_network(tmp_path):
    """Before any data is read: a ResNet-56 folder given to the VGG-16 study, and a time budget with a
    given network (it would re-plan the pretraining)."""
    from pyro_dirichlet.inference import pipeline

    study = load_script()
    cfg = pipeline.PipelineConfig(run_dir=str(tmp_path / "given"), model="resnet56", widths=(2,) * 27, target=None)
    net = build_model("resnet56", widths=[2] * 27)
    pdl.save_pruned(net, {"model": "resnet56", "model_kwargs": {"widths": [2] * 27}, "input_shape": [3, 32, 32],
                          "kept": {k: list(range(v)) for k, v in pdl.site_sizes(net).items()}}, cfg.pretrained_dir)
    with pytest.raises(SystemExit, match="not this run's network: model 'resnet56' \\(this run: 'vgg16'\\)"):
        study.main(["--model", "vgg16", "--widths", "4", "--pretrained", str(cfg.pretrained_dir), "--budget-macs",
                    "1000", "--run-dir", str(tmp_path / "run"), "--results", str(tmp_path / "results")])
    assert not (tmp_path / "run").exists()
    with pytest.raises(SystemExit):
        study.parse(["--model", "resnet56", "--pretrained", str(cfg.pretrained_dir), "--time-budget", "400"])
