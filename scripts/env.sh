# Sourced by scripts/run.sh and scripts/test.sh: create .venv if missing, install the
# pinned requirements and the project (editable), and set the data root default.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.installed-$(cat "$ROOT/requirements.txt" "$ROOT/pyproject.toml" | cksum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ]; then
    echo "[setup] creating environment in $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip >&2
    "$VENV/bin/pip" install -q -r "$ROOT/requirements.txt" >&2
    "$VENV/bin/pip" install -q --no-deps -e "$ROOT" >&2
    rm -f "$VENV"/.installed-*
    touch "$STAMP"
fi
# Data root: PYRO_DIRICHLET_DATA if set, else ../shared/data beside the checkout when present.
if [ -z "${PYRO_DIRICHLET_DATA:-}" ] && [ -d "$ROOT/../shared/data" ]; then
    export PYRO_DIRICHLET_DATA="$(cd "$ROOT/../shared/data" && pwd)"
fi
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
