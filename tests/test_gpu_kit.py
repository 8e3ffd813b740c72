"""The GPU kit's completeness check (scripts/check_gpu_kit.py) on hand-made wheels."""
import importlib.util
import zipfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "scripts" / "check_gpu_kit.py"
spec = importlib.util.spec_from_file_location("check_gpu_kit", SCRIPT)
kit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(kit)


def make_wheel(folder: Path, name: str, requires: list[str]) -> Path:
    path = folder / f"{name}-1.0-py3-none-any.whl"
    meta = "\n".join([f"Name: {name}", "Version: 1.0", *(f"Requires-Dist: {r}" for r in requires)])
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{name}-1.0.dist-info/METADATA", meta + "\n")
    return path


def test_unmet_requirements_name_who_needs_them(tmp_path):
    wheels = [make_wheel(tmp_path, "arviz_like", ["numpy>=1.26", "platformdirs", "H5NetCDF>=1",
                                                  'tomli; python_version < "3.11"', 'pytest; extra == "test"']),
              make_wheel(tmp_path, "h5netcdf", ["packaging"])]
    unmet = kit.unmet_requirements(wheels, image={"numpy", "packaging", "torch"}, project=["torch>=2.4", "tqdm"])
    assert unmet == [("pyro-dirichlet", "tqdm"), ("arviz_like", "platformdirs")]


def test_the_project_on_the_image_needs_the_kit(tmp_path, capsys):
    image = kit.read_image_packages(SCRIPT.parent / "gpu_image_packages.txt")
    assert {"torch", "torchvision", "numpy", "xarray", "h5py", "onnxruntime"} <= image
    make_wheel(tmp_path, "pyro-ppl", ["opt_einsum"])
    assert kit.main(["--wheels", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "'arviz" in out and "'torch-pruning" in out and "'torch>" not in out and "pyro-ppl" not in out
    make_wheel(tmp_path, "arviz", ["platformdirs"])
    make_wheel(tmp_path, "torch_pruning", ["torch"])
    make_wheel(tmp_path, "platformdirs", [])
    assert kit.main(["--wheels", str(tmp_path)]) == 0


def test_an_empty_kit_is_refused_naming_the_build_script(tmp_path):
    with pytest.raises(SystemExit, match="scripts/gpu_kit.sh"):
        kit.main(["--wheels", str(tmp_path)])
