#!/usr/bin/env bash
# Installs a pinned Synapse (with the PostgreSQL driver and OIDC support, as
# in the Synapse image) and pytest into a virtualenv cached outside the
# repository, keyed by version, so a second run installs nothing.
#
#   SYNAPSE_VERSION  the matrix-synapse release (default below)
#   CADUCEUS_CACHE   cache root (default ~/.cache/caduceus)
#   PYTHON           the interpreter the venv is made from (default python3)
#
# Prints the virtualenv's directory on its last line.
set -euo pipefail

SYNAPSE_VERSION="${SYNAPSE_VERSION:-1.163.2}"
CACHE="${CADUCEUS_CACHE:-$HOME/.cache/caduceus}"
VENV="$CACHE/synapse-$SYNAPSE_VERSION"
PYTHON="${PYTHON:-python3}"
# pytest and the test's HTTP/signing helpers; pinned so the suite is stable.
TEST_REQUIREMENTS=(pytest==8.4.2)

# The marker is written last, so an interrupted install is redone.
MARKER="$VENV/.caduceus-installed"
if [[ -f "$MARKER" && -x "$VENV/bin/python" ]]; then
  echo "$VENV"
  exit 0
fi

if ! command -v "$PYTHON" >/dev/null; then
  echo "hack/synapse.sh: $PYTHON not found; install Python 3.10 or newer or set PYTHON" >&2
  exit 1
fi

rm -rf "$VENV"
mkdir -p "$CACHE"
"$PYTHON" -m venv "$VENV" >&2
"$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
"$VENV/bin/python" -m pip install --quiet \
  "matrix-synapse[postgres,oidc]==$SYNAPSE_VERSION" "${TEST_REQUIREMENTS[@]}" >&2

# Fail here, not in the first test, when the install is unusable.
"$VENV/bin/python" - "$SYNAPSE_VERSION" >&2 <<'PY'
import sys
import authlib  # noqa: F401  the oidc extra
import psycopg2  # noqa: F401  the postgres extra
import synapse
if synapse.__version__ != sys.argv[1]:
    sys.exit(f"installed Synapse {synapse.__version__}, wanted {sys.argv[1]}")
PY

touch "$MARKER"
echo "$VENV"
