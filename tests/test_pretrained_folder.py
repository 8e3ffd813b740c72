"""Starting a run from a given pretrained folder (pipeline.adopt_pretrained): accepted when it is of
the run's model and data, recorded, and refused clearly when it is not."""
import json
import re

import pytest
import torch

import pyro_dirichlet as pdl
from pyro_dirichlet.inference import pipeline
from pyro_dirichlet.models import build_model

WIDTHS = (2,) * 27


def written_folder(tmp_path, model="resnet56", widths=WIDTHS):
    """A pretrained folder as the pretraining step writes it (config.json keyed, spec.json, model.pt)."""
    cfg = pipeline.PipelineConfig(run_dir=str(tmp_path / "elsewhere"), model=model, widths=widths, target=None)
    torch.manual_seed(0)
    net = build_model(model, widths=list(widths)).eval()
    sizes = pdl.site_sizes(net)
    pdl.save_pruned(net, {"model": model, "model_kwargs": {"widths": list(widths)}, "input_shape": [3, 32, 32],
                          "kept": {k: list(range(v)) for k, v in sizes.items()}, "error_pct": 12.5}, cfg.pretrained_dir)
    return cfg.pretrained_dir, net


def test_a_given_folder_is_adopted_with_its_settings_and_recorded(tmp_path):
    source, net = written_folder(tmp_path)
    cfg = pipeline.PipelineConfig(run_dir=str(tmp_path / "run"), model="resnet56", widths=WIDTHS, target=None,
                                  pretrain=pdl.TrainConfig(epochs=99))  # the folder's own settings win
    adopted = pipeline.adopt_pretrained(cfg, source)
    assert adopted.pretrain.epochs != 99 and adopted.pretrained_dir.name == source.name
    loaded, spec = pdl.load_pruned(adopted.pretrained_dir)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(loaded(x), net(x)) and spec["error_pct"] == 12.5
    record = pipeline.pretrained_source(adopted)
    assert record["source"] == str(source.resolve()) and len(record["model_sha256"]) == 64
    assert pipeline.adopt_pretrained(cfg, source) == adopted  # again: the same folder, nothing redone
    assert pipeline.pretrained_source(cfg) is None  # a network trained in the run has no source


@pytest.mark.parametrize("model, widths, message", [
    ("vgg16", None, "model 'resnet56' (this run: 'vgg16')"),
    ("resnet56", (4,) * 27, "widths [2, 2"),
])
def test_a_folder_of_another_network_is_refused(tmp_path, model, widths, message):
    source, _ = written_folder(tmp_path)
    cfg = pipeline.PipelineConfig(run_dir=str(tmp_path / "run"), model=model, widths=widths, target=None)
    with pytest.raises(pipeline.PretrainedMismatch, match=re.escape(message)):
        pipeline.adopt_pretrained(cfg, source)
    assert not (tmp_path / "run").exists()  # nothing written


def test_an_edited_or_incomplete_folder_is_refused(tmp_path):
    source, _ = written_folder(tmp_path)
    cfg = pipeline.PipelineConfig(run_dir=str(tmp_path / "run"), model="resnet56", widths=WIDTHS, target=None)
    config = json.loads((source / "config.json").read_text())
    config["data"]["dataset"] = "mnist"  # another data set: the folder's own key no longer matches
    (source / "config.json").write_text(json.dumps(config))
    with pytest.raises(pipeline.PretrainedMismatch, match=re.escape("dataset 'mnist' (this run: 'cifar10')")):
        pipeline.adopt_pretrained(cfg, source)
    config["data"]["dataset"] = "cifar10"
    config["train"]["epochs"] = 7  # edited: the name was made from other settings
    (source / "config.json").write_text(json.dumps(config))
    with pytest.raises(pipeline.PretrainedMismatch, match="edited or renamed"):
        pipeline.adopt_pretrained(cfg, source)
    (source / "model.pt").unlink()
    with pytest.raises(pipeline.PretrainedMismatch, match="lacks model.pt"):
        pipeline.adopt_pretrained(cfg, source)
