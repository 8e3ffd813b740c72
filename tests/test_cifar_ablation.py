"""The switch-form ablation on a BatchNorm network (benchmarks/cifar10_ablation.py), end to end on a
ResNet-56 4 channels wide, the second time from the first run's pretrained folder."""
import importlib.util
import json
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "cifar10_ablation.py"


def load_script():
    spec = importlib.util.spec_from_file_location("cifar10_ablation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_ablation_ranks_every_form_against_l1_and_random(cifar_root, tmp_path):
    study = load_script()
    common = ["--model", "resnet56", "--widths", "4", "--train-subset", "256", "--test-subset", "128",
              "--cost-examples", "32", "--error-examples", "96", "--fit-subset", "128", "--fit-epochs", "1",
              "--fit-batch-size", "32", "--archs", "2-3-4,3-3-3", "--device", "cpu", "--data-root", cifar_root,
              "--no-progress"]
    first = study.main([*common, "--variants", "s,norm,cap-0.5,l1,random", "--pretrain-epochs", "1",
                        "--run-dir", str(tmp_path / "a"), "--results", str(tmp_path / "ra")])
    assert list(first["variants"]) == ["s", "norm", "cap-0.5", "l1", "random"] and first["archs"] == ["2-3-4", "3-3-3"]
    assert first["variants"]["cap-0.5"]["settings"] | {"fit_subset": 0} == {
        "variant": "cap-0.5", "form": "cap", "share": 0.5, "fit_subset": 0, "fit_epochs": 1, "batch_size": 32,
        "alpha0": 0.5}
    for name, row in first["variants"].items():
        assert set(row["error_pct"]) == {"2-3-4", "3-3-3"} and all(0 <= e <= 100 for e in row["error_pct"].values())
        assert list(row["spearman"]) == first["cost_layers"] and len(first["cost_layers"]) == 3
    assert all(math.isfinite(v) for v in first["variants"]["l1"]["spearman"].values())
    assert json.loads((tmp_path / "ra" / "cifar10_resnet56_ablation.json").read_text()) == json.loads(
        json.dumps(first))
    assert "| norm |" in (tmp_path / "ra" / "cifar10_resnet56_ablation.md").read_text()
    given = next((tmp_path / "a").glob("pretrained-*"))
    second = study.main([*common, "--variants", "l1,random", "--pretrained", str(given), "--run-dir",
                         str(tmp_path / "b"), "--results", str(tmp_path / "rb")])
    assert second["pretrained"]["source"] == str(given.resolve())
    assert second["full_error_pct"] == first["full_error_pct"]  # the same network, so the same rankings and errors
    assert {n: r["error_pct"] for n, r in second["variants"].items()} == {
        n: first["variants"][n]["error_pct"] for n in ("l1", "random")}
    with pytest.raises(SystemExit, match="not this run's network"):  # another model's folder is refused
        study.main([*common, "--model", "vgg16", "--widths", "4", "--pretrained", str(given),
                    "--run-dir", str(tmp_path / "c")])
