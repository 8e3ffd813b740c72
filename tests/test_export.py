"""A pruned network shipped without this library: TorchScript, torch.export and ONNX files, checked."""
import pytest
import torch

import pyro_dirichlet as pdl
from pyro_dirichlet import export_network as export
from pyro_dirichlet.models import build_model


@pytest.fixture(scope="module")
def pruned():
    torch.manual_seed(0)
    net = build_model("lenet5").eval()
    sizes = pdl.site_sizes(net)
    links = pdl.input_links(net, list(sizes), net.input_shape)
    scores = {n: torch.rand(k) for n, k in sizes.items()}
    keep = pdl.keep_indices(scores, pdl.parse_architecture("5-8-45-15", sizes, links=links), links)
    return pdl.trim(net, keep, net.input_shape)  # with an InputSelect in fc1


@pytest.mark.parametrize("fmt", ["torchscript", "export", "onnx"])
def test_the_exported_file_computes_what_the_pruned_network_computes(pruned, fmt, tmp_path):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    record = export(pruned, tmp_path / f"lenet.{fmt}", (1, 28, 28), fmt)
    assert record["max_abs_diff"] < 1e-4 and record["same_predictions"] and record["bytes"] > 5_000
    assert [p.name for p in tmp_path.iterdir()] == [f"lenet.{fmt}"]  # one self-contained file
    x = torch.randn(5, 1, 28, 28)  # another batch size than the one exported with
    with torch.no_grad():
        expected = pruned(x)
        if fmt == "torchscript":
            got = torch.jit.load(str(tmp_path / "lenet.torchscript"))(x)
        elif fmt == "export":
            got = torch.export.load(str(tmp_path / "lenet.export")).module()(x)
        else:
            import onnxruntime as ort
            session = ort.InferenceSession(str(tmp_path / "lenet.onnx"), providers=["CPUExecutionProvider"])
            got = torch.from_numpy(session.run(None, {"x": x.numpy()})[0])
    assert torch.allclose(got, expected, atol=1e-4)


def test_an_unknown_format_is_refused(pruned, tmp_path):
    with pytest.raises(ValueError, match="export format must be one of"):
        export(pruned, tmp_path / "x", (1, 28, 28), "tflite")
