#!/usr/bin/env bash
# On the GPU machine (its own python3 with torch 2.11; nothing to download): install this working
# tree into that python's environment (the machine is thrown away after), taking what the image
# lacks from the kit's wheels (scripts/gpu_kit.sh); pip checks every requirement against what is
# installed and stops, naming it, on one it cannot meet. Then run one network's whole study:
#   bash scripts/gpu_run.sh vgg16 [benchmarks/cifar10_network.py options]
#   bash scripts/gpu_run.sh tests [pytest options]      the test suite with CUDA visible
# Results go to $OUT (the device tool's folder) when set, else results/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python3 -m pip install -q --no-index --find-links .gpu/wheels --no-build-isolation --no-cache-dir .
rm -rf build
export PYTHONUNBUFFERED=1 PYRO_DIRICHLET_DATA="$PWD/.gpu/data" PYRO_DIRICHLET_CACHE=/tmp/pdl-cache
python3 -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')"
what="$1"; shift
if [ "$what" = tests ]; then
    for f in .gpu/data/MNIST/raw/*.gz; do [ -f "${f%.gz}" ] || gunzip -k "$f"; done
    exec python3 -P -m pytest -q -p no:cacheprovider "$@"   # -P: the installed package, not ./pyro_dirichlet
fi
# 420 s: three networks and the tests fit a 30-minute GPU session. The study plans its epochs to
# fit (inference/time_plan.py): the machine and its run folder go back soon after the call.
# A later --time-budget overrides it.
exec python3 benchmarks/cifar10_network.py --model "$what" --results "${OUT:-results}" --time-budget 420 "$@"
