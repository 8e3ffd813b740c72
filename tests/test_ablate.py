"""The ablation command end to end on a small real-MNIST subset."""
import json

from pyro_dirichlet.fit import FitConfig
from pyro_dirichlet.inference.ablate import BASE, VARIANTS
from pyro_dirichlet.inference.cli import build_parser, config_from_args, main


def test_ablation_on_real_mnist(mnist_root, tmp_path, capsys):
    argv = ["ablate", "--variants", "base,gate-3,joint,l1", "--seeds", "0,1", "--holdout", "300", "--budgets",
            "300000,136825", "--cost-examples", "150", "--pretrain-epochs", "1", "--train-subset", "1200",
            "--test-subset", "400", "--run-dir", str(tmp_path / "run"), "--results", str(tmp_path / "results"),
            "--data-root", mnist_root, "--device", "cpu", "--no-progress"]
    assert main(argv) == 0
    result = json.loads((tmp_path / "results" / "lenet5_ablation.json").read_text())
    assert set(result["variants"]) == {"base", "gate-3", "joint", "l1"}
    for row in result["variants"].values():
        assert set(row["spearman"]) == {"conv1", "conv2", "fc1:in", "fc1"} and row["seeds"] == 2
        assert all(-1 <= v[0] <= 1 for v in row["spearman"].values())
        assert set(row["error_pct"]) == {"300000", "136825"}
    assert result["variants"]["l1"]["kendall"]["conv1"] == 1.0  # a norm does not depend on the seed
    assert result["variants"]["gate-3"]["settings"]["form"] == "gate"
    assert "| gate-3 |" in (tmp_path / "results" / "lenet5_ablation.md").read_text()
    capsys.readouterr()
    assert main(argv) == 0  # a rerun reads every result from its cache
    again = json.loads((tmp_path / "results" / "lenet5_ablation.json").read_text())
    assert again["variants"] == result["variants"]
    other = argv.copy()
    other[other.index("--budgets") + 1] = "200000"
    assert main(other) == 0  # other budgets: the cached fits, measured anew
    changed = json.loads((tmp_path / "results" / "lenet5_ablation.json").read_text())
    assert all(set(v["error_pct"]) == {"200000"} for v in changed["variants"].values())
    assert changed["variants"]["base"]["spearman"] == result["variants"]["base"]["spearman"]
    assert main(argv[:2] + ["base,magic"]) == 2 and "unknown variant" in capsys.readouterr().err


def test_variants_name_only_base_settings():
    assert all(set(v) <= {*BASE, "temperature"} for v in VARIANTS.values())


def test_cli_defaults_are_fitconfigs():
    args = build_parser().parse_args(["fit"])
    fit = config_from_args(args).fit
    assert fit == FitConfig()
