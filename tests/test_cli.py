"""The command line, the data setting, and the whole pipeline on a small real-MNIST subset."""
import json

import pytest

from pyro_dirichlet import DataNotFoundError, evaluate, load_mnist, load_pruned
from pyro_dirichlet.inference.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_count(capsys):
    code, out, _ = run_cli(capsys, "count", "--model", "lenet5", "--arch", "5-8-45-15")
    assert code == 0 and json.loads(out) == {"macs": 142_585, "params": 7_793}
    code, out, _ = run_cli(capsys, "count", "--model", "lenet5", "--arch", "20-50-800-500")
    assert json.loads(out)["macs"] == 2_933_000
    code, _, err = run_cli(capsys, "count", "--model", "lenet5", "--arch", "5-8-45-900")
    assert code == 2 and "outside 1..500" in err


def test_missing_data_says_where_it_looked(tmp_path):
    with pytest.raises(DataNotFoundError, match=rf"looked in {tmp_path}.*PYRO_DIRICHLET_DATA"):
        load_mnist(tmp_path, download=False)


@pytest.fixture(scope="module")
def small_run(mnist_root, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    common = ["--run-dir", str(run_dir), "--data-root", mnist_root, "--train-subset", "3000", "--test-subset", "1000",
              "--pretrain-epochs", "3", "--fit-epochs", "1", "--finetune-epochs", "2", "--no-progress",
              "--device", "cpu"]
    assert main(["run", *common]) == 0
    return run_dir, common


def test_pipeline_on_real_mnist(small_run, mnist_root, capsys):
    run_dir, _ = small_run
    capsys.readouterr()
    pretrained = json.loads((run_dir / "pretrained" / "spec.json").read_text())
    assert pretrained["macs"] == 2_933_000 and pretrained["error_pct"] < 12
    folder = run_dir / "fit-mean-joint" / "prune-arch-5-8-45-15" / "finetuned"
    result = json.loads((folder / "result.json").read_text())
    assert result["architecture"] == "5-8-45-15" and result["macs"] == 142_585
    assert result["error_pct"] < result["error_pruned_pct"]  # fine-tuning helped
    net, spec = load_pruned(folder)
    test = load_mnist(mnist_root, train=False).subset(1000)
    assert evaluate(net, test) == pytest.approx(result["error_pct"])
    assert (run_dir / "fit-mean-joint" / "posterior.nc").stat().st_size > 0


def test_budget_and_mass_targets_reuse_the_run(small_run, capsys):
    run_dir, common = small_run
    capsys.readouterr()
    code, out, _ = run_cli(capsys, "prune", *common, "--budget-macs", "142585")
    assert code == 0
    pruned = json.loads(out)
    assert pruned["macs"] <= 142_585
    code, out, _ = run_cli(capsys, "prune", *common, "--mass", "0.5")
    assert code == 0 and json.loads(out)["macs"] < 2_933_000
    code, _, err = run_cli(capsys, "prune", *common, "--budget-macs", "1000")
    assert code == 2 and "below the smallest possible network" in err
    code, _, err = run_cli(capsys, "prune", *common, "--arch", "5-8-45")
    assert code == 2 and "has 3 counts" in err
    code, _, err = run_cli(capsys, "fit", *common, "--alpha0", "0")
    assert code == 2 and "alpha0 must be a positive number" in err


def test_corrupt_checkpoint_is_reported(small_run, capsys, tmp_path):
    _, common = small_run
    run_dir = tmp_path / "r"
    (run_dir / "pretrained").mkdir(parents=True)
    (run_dir / "pretrained" / "train.ckpt").write_bytes(b"\x00garbage")
    args = [*common]
    args[args.index("--run-dir") + 1] = str(run_dir)
    code, _, err = run_cli(capsys, "pretrain", *args)
    assert code == 2 and "train.ckpt is corrupt" in err
