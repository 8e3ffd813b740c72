"""Check that the GPU kit's wheels complete the GPU image: every requirement of this project and
of each wheel in ``.gpu/wheels`` (markers evaluated for the image's Python 3.12 on Linux x86_64)
is met by another kit wheel or by a package the image has (``scripts/gpu_image_packages.txt``).

    python scripts/check_gpu_kit.py [--wheels .gpu/wheels] [--image scripts/gpu_image_packages.txt]

Prints each unmet requirement with who needs it and exits 1; the fix is to add it to
``WHEELS`` in ``scripts/gpu_kit.sh``. Versions are not compared (the image list has none);
``pip install --no-index`` on the GPU machine checks them.
"""
from __future__ import annotations

import argparse
import sys
import tomllib
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
IMAGE_MARKERS = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
                 "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
                 "implementation_name": "cpython", "platform_python_implementation": "CPython",
                 "extra": ""}


def wheel_requirements(wheel: Path) -> tuple[str, list[str]]:
    """(distribution name, Requires-Dist lines) read from a wheel's METADATA."""
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        lines = zf.read(meta).decode().splitlines()
    name = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("Name:"))
    return name, [line.split(":", 1)[1].strip() for line in lines if line.startswith("Requires-Dist:")]


def unmet_requirements(wheels: list[Path], image: set[str], project: list[str]) -> list[tuple[str, str]]:
    """[(needed by, requirement)] that neither a kit wheel nor the image provides."""
    needs = [("pyro-dirichlet", req) for req in project]
    provided = set(image)
    for wheel in wheels:
        name, reqs = wheel_requirements(wheel)
        provided.add(canonicalize_name(name))
        needs += [(name, req) for req in reqs]
    unmet = []
    for who, line in needs:
        req = Requirement(line)
        applies = req.marker is None or req.marker.evaluate(IMAGE_MARKERS)
        if applies and canonicalize_name(req.name) not in provided:
            unmet.append((who, line))
    return unmet


def read_image_packages(path: Path) -> set[str]:
    words = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return {canonicalize_name(w) for w in words if w}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wheels", type=Path, default=ROOT / ".gpu" / "wheels")
    ap.add_argument("--image", type=Path, default=ROOT / "scripts" / "gpu_image_packages.txt")
    args = ap.parse_args(argv)
    wheels = sorted(args.wheels.glob("*.whl"))
    if not wheels:
        sys.exit(f"no wheels in {args.wheels}: build the kit first with `bash scripts/gpu_kit.sh`")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    unmet = unmet_requirements(wheels, read_image_packages(args.image), project)
    for who, req in unmet:
        print(f"unmet on the GPU image: {req!r} (needed by {who}): add it to WHEELS in scripts/gpu_kit.sh")
    if not unmet:
        print(f"kit complete: {len(wheels)} wheels + the image meet every requirement")
    return 1 if unmet else 0


if __name__ == "__main__":
    sys.exit(main())
