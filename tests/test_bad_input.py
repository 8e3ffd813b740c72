"""Bad input gets a clear message that names the problem and the fix (exit code 2 at the CLI)."""
import os
import pytest
import torch

import pyro_dirichlet as pdl
from pyro_dirichlet.inference import cli, pipeline
from pyro_dirichlet.models import build_model


def images(n=16, label=None):
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (n,), generator=gen)
    if label is not None:
        labels[3] = label
    return pdl.ArrayDataset(torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=gen), labels,
                            (0.13,), (0.31,))


def run_cli(argv, capsys):
    code = cli.main(argv)
    return code, capsys.readouterr().err


def test_nan_features_and_a_diverging_loss():
    features = torch.randn(6, 3)
    features[4, 1] = float("nan")
    with pytest.raises(ValueError, match=r"1 example\(s\) have NaN or infinite features \(rows \[4\]\)"):
        pdl.FeatureDataset(features, torch.zeros(6, dtype=torch.long))
    with pytest.raises(ValueError, match=r"the training loss became (nan|inf) in epoch 1/\d+: lower the learning rate"):
        pdl.train(build_model("lenet5"), images(64), pdl.TrainConfig(epochs=1, lr=1e12, batch_size=16), progress=False)


def test_labels_outside_the_classes():
    net = build_model("lenet5")
    with pytest.raises(ValueError, match=r"labels must be class indices 0..9 .* found labels from \d+ to 12"):
        pdl.train(net, images(label=12), pdl.TrainConfig(epochs=1), progress=False)
    switched = pdl.SwitchedNetwork(net, ["conv1"])
    with pytest.raises(ValueError, match=r"labels must be class indices 0..9 .* from -1 to"):
        pdl.fit_switches(switched, images(label=-1), pdl.FitConfig(epochs=1), progress=False)


def test_empty_data_and_bad_subsets(capsys, tmp_path):
    data = images()
    empty = data.take(torch.zeros(0, dtype=torch.long))
    for call in (lambda: pdl.train(build_model("lenet5"), empty, pdl.TrainConfig(epochs=1), progress=False),
                 lambda: pdl.evaluate(build_model("lenet5"), empty)):
        with pytest.raises(ValueError, match=r"the data set is empty \(0 examples\)"):
            call()
    for n in (0, -5):
        with pytest.raises(ValueError, match=f"at least one example, got {n}"):
            data.subset(n)
        code, err = run_cli(["pretrain", "--train-subset", str(n), "--run-dir", str(tmp_path / "r"), "--data-root",
                             str(tmp_path / "nodata"), "--no-download"], capsys)
        assert code == 2 and f"--train-subset {n}: a subset needs at least one example" in err


def test_float_images_are_refused():
    with pytest.raises(ValueError, match=r"ArrayDataset holds uint8 images .* \(images \* 255\).round\(\)"):
        pdl.ArrayDataset(torch.rand(4, 1, 28, 28), torch.zeros(4, dtype=torch.long), (0.5,), (0.5,))


def test_unknown_model(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run", "--model", "lenet6"])
    assert exit_.value.code == 2 and "invalid choice: 'lenet6'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown model 'lenet6'; choose one of"):
        pipeline.PipelineConfig(model="lenet6")


def test_fit_needs_no_pruning_target_and_prune_asks_for_one(capsys, tmp_path):
    parser = cli.build_parser()
    cfg = cli.config_from_args(parser.parse_args(["fit", "--model", "vgg16"]))
    assert cfg.target is None and cfg.model == "vgg16"
    assert not any(a.dest in ("arch", "budget_macs", "finetune_epochs") for a in parser._subparsers._group_actions[0]
                   .choices["fit"]._actions)
    code, err = run_cli(["prune", "--model", "vgg16", "--run-dir", str(tmp_path / "r")], capsys)
    assert code == 2 and "give exactly one pruning target: --arch" in err


def test_an_unwritable_run_directory_is_refused_before_any_work(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, err = run_cli(["run", "--run-dir", str(blocker / "run")], capsys)
    assert code == 2 and f"cannot write to {blocker / 'run'}" in err and "--run-dir" in err
    code, err = run_cli(["compare", "--run-dir", str(tmp_path / "ok"), "--results", str(blocker / "results")], capsys)
    assert code == 2 and "cannot write to" in err


def test_ctrl_c_says_how_to_resume(capsys, monkeypatch, tmp_path):
    def interrupted(cfg):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "run", interrupted)
    code, err = run_cli(["run", "--run-dir", str(tmp_path / "r")], capsys)
    assert code == 2 and "interrupted" in err and "run the same command again to resume" in err
    assert "Traceback" not in err


def test_a_truncated_mnist_file_is_named_with_its_expected_size(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "t10k-images-idx3-ubyte").write_bytes(b"\x00" * 100)
    (raw / "t10k-labels-idx1-ubyte").write_bytes(b"\x00" * 10_008)
    with pytest.raises(pdl.DataNotFoundError, match=r"t10k-images-idx3-ubyte is corrupt or truncated: 100 bytes, "
                                                    r"expected 7,840,016"):
        pdl.load_mnist(tmp_path, train=False)


def test_data_not_found_leaves_no_folders_behind(tmp_path, monkeypatch):
    from torchvision.datasets import MNIST

    def offline(self):
        os.makedirs(self.raw_folder, exist_ok=True)  # as torchvision does before it downloads
        raise RuntimeError("no network")

    monkeypatch.setattr(MNIST, "download", offline)
    with pytest.raises(pdl.DataNotFoundError, match="download failed"):
        pdl.load_mnist(tmp_path / "nonexistent")
    assert not (tmp_path / "nonexistent").exists()


def test_written_files_follow_the_umask(tmp_path):
    from pyro_dirichlet import io

    path = io.save_json({"a": 1}, tmp_path / "x.json")
    assert path.stat().st_mode & 0o777 == 0o666 & ~io._UMASK
