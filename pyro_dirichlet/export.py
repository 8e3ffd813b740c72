"""Ship a pruned network without this library: one self-contained file, checked against PyTorch.

``export_network(net, path, example_inputs, format)`` writes

- ``"torchscript"``: ``torch.jit.trace`` (load with ``torch.jit.load``);
- ``"export"``: ``torch.export`` with a dynamic batch dimension (load with ``torch.export.load``);
- ``"onnx"``: ``torch.onnx.export`` with the weights inside and a dynamic batch (checked with
  onnxruntime, the ``onnx`` extra);

then loads the file back, runs it and PyTorch on a random batch of 3 and returns
``{"file", "format", "bytes", "max_abs_diff", "same_predictions"}``. A file whose outputs differ
by more than ``1e-4`` of their scale is removed and refused.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn

from .frozen import frozen
from .groups import input_shape
from .io import atomic_write

FORMATS = ("torchscript", "export", "onnx")


def export_network(net: nn.Module, path: str | os.PathLike, example_inputs=None, format: str = "onnx") -> dict:
    """Write ``net`` (run in eval mode, on the CPU) to ``path`` in ``format`` and check it (module docstring)."""
    if format not in FORMATS:
        raise ValueError(f"export format must be one of {FORMATS}, got {format!r}")
    path = Path(path)
    net = net.cpu()
    x = torch.randn(3, *input_shape(net, example_inputs), generator=torch.Generator().manual_seed(0))
    with frozen(net), torch.no_grad():
        expected = net(x)
        if format == "torchscript":
            atomic_write(path, lambda tmp: torch.jit.trace(net, x).save(tmp))
            got = torch.jit.load(str(path))(x)
        elif format == "export":
            batch = torch.export.Dim("batch", min=1)
            program = torch.export.export(net, (x,), dynamic_shapes=({0: batch},))
            atomic_write(path, lambda tmp: torch.export.save(program, tmp))
            got = torch.export.load(str(path)).module()(x)
        else:
            got = _onnx(net, x, path)
    diff = float((got - expected).abs().max())
    if not diff <= 1e-4 * max(float(expected.abs().max()), 1e-3):
        path.unlink(missing_ok=True)
        raise ValueError(f"the exported {format} file's outputs differ from PyTorch's by {diff:.3g}; nothing was kept")
    return {"file": str(path), "format": format, "bytes": path.stat().st_size, "max_abs_diff": diff,
            "same_predictions": bool((got.argmax(-1) == expected.argmax(-1)).all())}


def _onnx(net: nn.Module, x: torch.Tensor, path: Path) -> torch.Tensor:
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ImportError(f"the ONNX check needs onnxruntime ({e}): pip install 'pyro-dirichlet[onnx]'") from e
    atomic_write(path, lambda tmp: torch.onnx.export(
        net, (x,), tmp, input_names=["x"], output_names=["y"], external_data=False,
        dynamic_shapes=({0: torch.export.Dim("batch", min=1)},)))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"x": x.numpy()})[0])
