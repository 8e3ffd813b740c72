#!/usr/bin/env bash
# Test suite (CPU, a few minutes). Extra arguments go to pytest.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec python -m pytest "$@"
