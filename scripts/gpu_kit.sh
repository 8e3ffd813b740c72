#!/usr/bin/env bash
# Build the GPU kit in .gpu/ (ignored by git; parts of it are carried to the GPU machine):
#   .gpu/data/cifar10-jpeg.pt  CIFAR-10 as one file of JPEG bytes (scripts/pack_cifar10.py), 53.6 MiB
#   .gpu/data/MNIST/raw/*.gz   MNIST, gzipped (11 MiB), for the test suite there
#   .gpu/wheels/*.whl          what the GPU image (Python 3.12, torch 2.11) lacks: pyro-ppl, pyro-api,
#                              arviz, h5netcdf, xarray-einstats, platformdirs, torch-pruning, checked
#                              against the image's packages by scripts/check_gpu_kit.py (this project is
#                              installed from the working tree there, so a change needs no new kit)
# Then, on the GPU machine (device tool), one network or the tests (a call carries at most 64 MiB):
#   carry [".gpu/wheels", ".gpu/data/cifar10-jpeg.pt"]:  bash scripts/gpu_run.sh vgg16
#   carry [".gpu/wheels", ".gpu/data/MNIST"]:            bash scripts/gpu_run.sh tests
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
WHEELS=(pyro-ppl==1.9.2 pyro-api==0.1.2 arviz==0.23.4 h5netcdf==1.8.2 xarray-einstats==0.9.1
        platformdirs==4.14.8 torch-pruning==1.6.1)
if [ ! -f .gpu/data/cifar10-jpeg.pt ]; then
    python scripts/pack_cifar10.py --out .gpu/data/cifar10-jpeg.pt
fi
MNIST_RAW="$(python -c 'from pyro_dirichlet.data import data_root; print(data_root())')/MNIST/raw"
mkdir -p .gpu/data/MNIST/raw
for f in "$MNIST_RAW"/*-ubyte; do
    [ -f ".gpu/data/MNIST/raw/$(basename "$f").gz" ] || gzip -9 -n -c "$f" > ".gpu/data/MNIST/raw/$(basename "$f").gz"
done
rm -rf .gpu/wheels && mkdir -p .gpu/wheels
python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .gpu/wheels "${WHEELS[@]}"
python scripts/check_gpu_kit.py
du -sh .gpu/data/cifar10-jpeg.pt .gpu/data/MNIST .gpu/wheels
ls .gpu/wheels
