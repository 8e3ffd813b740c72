"""The command line, the data setting, and the whole pipeline on a small real-MNIST subset."""
import json
from pathlib import Path

import pytest
import torch

from pyro_dirichlet import DataNotFoundError, evaluate, load_mnist, load_pruned
from pyro_dirichlet import load_idata as pdl_load_idata
from pyro_dirichlet.inference.cli import build_parser, config_from_args, main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_count(capsys):
    code, out, _ = run_cli(capsys, "count", "--model", "lenet5", "--arch", "5-8-45-15")
    assert code == 0 and json.loads(out) == {"macs": 136_825, "paper_flops": 140_242, "params": 1_988}
    code, out, _ = run_cli(capsys, "count", "--model", "lenet5")
    assert json.loads(out) == {"macs": 2_293_000, "paper_flops": 2_308_230, "params": 431_080}
    code, out, _ = run_cli(capsys, "count", "--model", "lenet5_3fc", "--arch", "5-8-45-15")
    assert json.loads(out)["macs"] == 142_585
    code, _, err = run_cli(capsys, "count", "--model", "lenet5", "--arch", "5-8-45-900")
    assert code == 2 and "outside 1..500" in err
    code, _, err = run_cli(capsys, "count", "--model", "lenet5", "--arch", "5-8-200-15")
    assert code == 2 and "give at most 128" in err


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


def without(args, *flags):
    """``args`` without the given options and their values (a step has only its own options)."""
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in flags:
            skip = True
        else:
            out.append(a)
    return out


def only(folder, pattern):
    """The one path under ``folder`` that matches ``pattern``."""
    (path,) = folder.glob(pattern)
    return path


def test_pipeline_on_real_mnist(small_run, mnist_root, capsys):
    run_dir, _ = small_run
    capsys.readouterr()
    pretrained = json.loads(only(run_dir, "pretrained-*/spec.json").read_text())
    assert pretrained["macs"] == 2_293_000 and pretrained["error_pct"] < 12
    folder = only(run_dir, "pretrained-*/fit-mean-layerwise-*/prune-arch-5-8-45-15/finetuned-*")
    result = json.loads((folder / "result.json").read_text())
    assert result["architecture"] == "5-8-45-15" and (result["macs"], result["paper_flops"]) == (136_825, 140_242)
    assert result["error_pct"] < result["error_pruned_pct"]  # fine-tuning helped
    assert json.loads((folder / "config.json").read_text())["epochs"] == 2
    net, spec = load_pruned(folder)
    test = load_mnist(mnist_root, train=False).subset(1000)
    assert evaluate(net, test) == pytest.approx(result["error_pct"])
    assert only(run_dir, "pretrained-*/fit-mean-layerwise-*/posterior.nc").stat().st_size > 0
    forests = sorted(p.name for p in only(run_dir, "pretrained-*/fit-mean-layerwise-*").glob("forest-*.png"))
    assert forests == ["forest-conv1.png", "forest-conv2.png", "forest-fc1-in.png", "forest-fc1.png"]


def test_budget_and_mass_targets_reuse_the_run(small_run, capsys):
    run_dir, common = small_run
    common = without(common, "--finetune-epochs")
    capsys.readouterr()
    code, out, _ = run_cli(capsys, "prune", *common, "--budget-macs", "136825")
    assert code == 0
    pruned = json.loads(out)
    assert pruned["macs"] <= 136_825
    code, out, _ = run_cli(capsys, "prune", *common, "--mass", "0.5")
    assert code == 0 and json.loads(out)["macs"] < 2_293_000
    code, _, err = run_cli(capsys, "prune", *common, "--budget-macs", "1000")
    assert code == 2 and "below the smallest possible network" in err
    code, _, err = run_cli(capsys, "prune", *common, "--arch", "5-8-45")
    assert code == 2 and "has 3 counts" in err
    with pytest.raises(SystemExit) as exit_:  # prune has no fine-tuning options
        run_cli(capsys, "prune", *common, "--finetune-epochs", "2")
    assert exit_.value.code == 2 and "unrecognized arguments: --finetune-epochs" in capsys.readouterr().err
    code, _, err = run_cli(capsys, "fit", *common, "--alpha0", "0")
    assert code == 2 and "alpha0 must be a positive number" in err


def test_corrupt_checkpoint_is_reported(small_run, capsys, tmp_path):
    _, common = small_run
    args = without(common, "--finetune-epochs", "--fit-epochs")
    args[args.index("--run-dir") + 1] = str(tmp_path / "r")
    folder = config_from_args(build_parser().parse_args(["pretrain", *args])).pretrained_dir
    (folder / "train.ckpt").write_bytes(b"\x00garbage")
    code, _, err = run_cli(capsys, "pretrain", *args)
    assert code == 2 and "train.ckpt is corrupt" in err


TINY = ["--train-subset", "1000", "--test-subset", "500", "--pretrain-epochs", "1", "--fit-epochs", "1",
        "--finetune-epochs", "1", "--no-progress", "--device", "cpu"]


def tiny_run(capsys, mnist_root, run_dir, *extra):
    code, out, err = run_cli(capsys, "run", "--run-dir", str(run_dir), "--data-root", mnist_root, *TINY, *extra)
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize("change, setting, where", [
    (["--alpha0", "5"], ("alpha0", 5.0), "fit"),
    (["--fit-epochs", "2"], ("epochs", 2), "fit"),
    (["--pretrain-epochs", "2"], ("epochs", 2), "pretrained"),
    (["--train-subset", "1200"], ("train_subset", 1200), "pretrained"),
    (["--seed", "1"], ("seed", 1), "pretrained"),
    (["--finetune-epochs", "2"], ("epochs", 2), "finetuned"),
])
def test_a_changed_setting_never_returns_the_old_result(change, setting, where, mnist_root, tmp_path, capsys):
    first = tiny_run(capsys, mnist_root, tmp_path)
    again = tiny_run(capsys, mnist_root, tmp_path)
    assert again["run"] == first["run"] and again["folder"] == first["folder"]  # same settings: reused
    changed = tiny_run(capsys, mnist_root, tmp_path, *change)
    assert changed["folder"] != first["folder"]
    parts = Path(changed["folder"]).parts
    step = Path(*parts[: next(i for i, part in enumerate(parts) if part.startswith(where)) + 1])
    config = json.loads((step / "config.json").read_text())  # the changed step's own settings
    key, value = setting
    flat = {**config, **config.get("fit", {}), **config.get("data", {}), **config.get("train", {})}
    assert flat[key] == value
    model = torch.load(f"{changed['folder']}/model.pt")
    old = torch.load(f"{first['folder']}/model.pt")
    assert any(not torch.equal(model[k], old[k]) for k in old)  # a different network came out


def test_the_cpu_pipeline_is_reproducible_bit_for_bit(mnist_root, tmp_path, capsys):
    a = tiny_run(capsys, mnist_root, tmp_path / "a", "--estimator", "mc", "--samples", "4")
    b = tiny_run(capsys, mnist_root, tmp_path / "b", "--estimator", "mc", "--samples", "4")
    assert a["run"] | {"fit_seconds": 0} == b["run"] | {"fit_seconds": 0} and a["baseline"] == b["baseline"]
    x, y = torch.load(f"{a['folder']}/model.pt"), torch.load(f"{b['folder']}/model.pt")
    assert all(torch.equal(x[k], y[k]) for k in x)
    phi = [torch.load(next((tmp_path / d).glob("pretrained-*/fit-*/switches.ckpt")))["guide"] for d in "ab"]
    assert all(torch.equal(phi[0][k], phi[1][k]) for k in phi[0])


def test_the_fit_split_never_overlaps_the_pretraining_data(mnist_root, tmp_path, capsys):
    from pyro_dirichlet.inference import pipeline

    result = tiny_run(capsys, mnist_root, tmp_path, "--holdout", "300", "--fit-data", "holdout")
    held = json.loads(only(tmp_path, "pretrained-*/holdout.json").read_text())["source_indices"]
    cfg = config_from_args(build_parser().parse_args(["run", "--data-root", mnist_root, *TINY, "--holdout", "300",
                                                      "--fit-data", "holdout"]))
    train, _ = pipeline.load_data(cfg)
    pretrain_data, fit_data = pipeline.split_data(cfg, train)
    assert sorted(fit_data.source.tolist()) == sorted(held) and len(set(held)) == 300
    assert not set(held) & set(pretrain_data.source.tolist())
    assert len(pretrain_data) + len(held) == len(train) == 1000
    assert "fit-mean-layerwise-" in result["folder"]
    code, _, err = run_cli(capsys, "fit", "--data-root", mnist_root, *without(TINY, "--finetune-epochs"), "--fit-data", "holdout")
    assert code == 2 and "--holdout N > 0" in err


def test_a_step_whose_outputs_were_deleted_is_redone(mnist_root, tmp_path, capsys):
    """A finished run whose fine-tuned and pretrained model.pt are deleted: the same command
    redoes those steps (resuming from their checkpoints) and reports the same result."""
    first = tiny_run(capsys, mnist_root, tmp_path / "r")
    finetuned = Path(first["folder"])
    (finetuned / "model.pt").unlink()
    only(tmp_path / "r", "pretrained-*/model.pt").unlink()
    again = tiny_run(capsys, mnist_root, tmp_path / "r")
    assert again["run"] == first["run"] and (finetuned / "model.pt").is_file()
    assert load_pruned(finetuned)[1]["error_pct"] == first["run"]["error_pct"]
    posterior = only(tmp_path / "r", "pretrained-*/fit-*/posterior.nc")
    posterior.write_bytes(b"garbage")  # a corrupt posterior is rebuilt from the fit's checkpoint
    code, _, err = run_cli(capsys, "fit", "--run-dir", str(tmp_path / "r"), "--data-root", mnist_root,
                           *without(TINY, "--finetune-epochs"))
    assert code == 0, err
    assert pdl_load_idata(posterior).posterior.sizes["draw"] == 1000


def test_a_full_disk_names_the_file_and_keeps_nothing_half_written(tmp_path, monkeypatch):
    from pyro_dirichlet import io

    target = tmp_path / "model.pt"
    io.save_torch({"a": 1}, target)

    def full(obj, f):
        Path(f).write_bytes(b"x" * 100)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr(io.torch, "save", full)
    with pytest.raises(io.StorageError, match=r"could not write .*model.pt: the disk is full .* 100 bytes of it"):
        io.save_torch({"a": 2}, target)
    monkeypatch.undo()
    assert io.load_torch(target) == {"a": 1} and [p.name for p in tmp_path.iterdir()] == ["model.pt"]

    def no_space(tmp):
        raise OSError(28, "No space left on device")

    with pytest.raises(io.StorageError, match="run the same command again: it resumes"):
        io.atomic_write(tmp_path / "g.txt", no_space)
    assert not (tmp_path / "g.txt").exists()


def test_compare_runs_from_the_command_line_and_reuses_its_runs(capsys, mnist_root, tmp_path):
    """`pyro-dirichlet compare` end to end on a tiny subset; a rerun reads every result from its cache."""
    args = ["compare", "--methods", "dirichlet-mean,l2", "--budgets", "300000", "--seeds", "0", "--finetune-epochs",
            "1", "--train-subset", "600", "--test-subset", "300", "--pretrain-epochs", "1", "--allocations",
            "same,cost", "--no-progress", "--data-root", mnist_root, "--run-dir", str(tmp_path / "run"),
            "--results", str(tmp_path / "results")]
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    first = json.loads(out)
    assert set(first["finetuned_error_pct"]) == {f"{m}/{a}@300000" for m in ("dirichlet-mean", "l2")
                                                 for a in ("same", "cost")}
    runs = sorted((tmp_path / "run").glob("pretrained-*/compare-*/runs/*.json"))
    assert len(runs) == 4
    stamps = [p.stat().st_mtime_ns for p in runs]
    code, out, _ = run_cli(capsys, *args)
    assert code == 0 and json.loads(out)["finetuned_error_pct"] == first["finetuned_error_pct"]
    assert [p.stat().st_mtime_ns for p in runs] == stamps  # nothing recomputed
    assert (tmp_path / "results" / "lenet5_baselines.md").exists()
