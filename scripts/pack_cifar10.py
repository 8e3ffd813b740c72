"""Pack the CIFAR-10 JPEG copy into one file for a GPU machine (``pyro_dirichlet.cifar10.pack_cifar10``).

    python scripts/pack_cifar10.py [--jpeg-root DIR] [--out FILE]

Defaults: ``<data root>/cifar10-jpg`` (``$PYRO_DIRICHLET_DATA``) to ``.gpu/data/cifar10-jpeg.pt``,
the folder ``scripts/gpu_kit.sh`` carries (``PYRO_DIRICHLET_DATA=.gpu/data`` there).
"""
import argparse
import time

import pyro_dirichlet as pdl
from pyro_dirichlet.cifar10 import PACKED_CIFAR10, pack_cifar10

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jpeg-root", default=None, help="folder with train/ and test/ (default: <data root>/cifar10-jpg)")
    ap.add_argument("--out", default=f".gpu/data/{PACKED_CIFAR10}")
    a = ap.parse_args()
    t0 = time.perf_counter()
    path = pack_cifar10(a.jpeg_root or pdl.data_root() / "cifar10-jpg", a.out)
    print(f"{path}: {path.stat().st_size / 2**20:.1f} MiB in {time.perf_counter() - t0:.1f} s")
