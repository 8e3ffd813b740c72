#!/usr/bin/env bash
# On the GPU machine (its own python3 with torch 2.11; nothing to download): install the kit's
# wheels (scripts/gpu_kit.sh) into /tmp/site, then run one network's whole study:
#   bash scripts/gpu_run.sh vgg16 [benchmarks/cifar10_network.py options]
#   bash scripts/gpu_run.sh tests [pytest options]      the test suite with CUDA visible
# Results go to $OUT (the device tool's folder) when set, else results/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/wheels/*.whl
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir --target /tmp/site .
rm -rf build
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 PYRO_DIRICHLET_DATA="$PWD/.gpu/data" PYRO_DIRICHLET_CACHE=/tmp/pdl-cache
python3 -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')"
what="$1"; shift
if [ "$what" = tests ]; then
    exec python3 -m pytest -q -p no:cacheprovider "$@"
fi
exec python3 benchmarks/cifar10_network.py --model "$what" --results "${OUT:-results}" "$@"
