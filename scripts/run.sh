#!/usr/bin/env bash
# Main job: the LeNet-5 / MNIST Dirichlet pruning pipeline with the embedded defaults.
# Extra arguments go to `pyro-dirichlet run` (see `pyro-dirichlet run --help`).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec pyro-dirichlet run "$@"
