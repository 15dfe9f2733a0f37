#!/usr/bin/env bash
# Installs the end-to-end test's Matrix client (matrix-nio with its E2EE
# extra, crypto by vodozemac) from tests/e2e/requirements.txt into a
# virtualenv cached outside the repository, keyed by the requirements' hash,
# so a second run installs nothing and a changed pin installs afresh.
#
#   CADUCEUS_CACHE   cache root (default ~/.cache/caduceus)
#   PYTHON           the interpreter the venv is made from (default python3)
#
# Prints the virtualenv's directory on its last line; run the client as
#   "$(hack/e2e-client.sh | tail -1)/bin/python" tests/e2e/matrix_e2ee.py --help
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQUIREMENTS="$ROOT/tests/e2e/requirements.txt"
CACHE="${CADUCEUS_CACHE:-$HOME/.cache/caduceus}"
PYTHON="${PYTHON:-python3}"
HASH="$(sha256sum "$REQUIREMENTS" | cut -c1-12)"
VENV="$CACHE/e2e-client-$HASH"

# The marker is written last, so an interrupted install is redone.
MARKER="$VENV/.caduceus-installed"
if [[ -f "$MARKER" && -x "$VENV/bin/python" ]]; then
  echo "$VENV"
  exit 0
fi

if ! command -v "$PYTHON" >/dev/null; then
  echo "hack/e2e-client.sh: $PYTHON not found; install Python 3.10 or newer or set PYTHON" >&2
  exit 1
fi
# Debian splits venv (ensurepip) out of the interpreter.
if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
  if command -v apt-get >/dev/null; then
    apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv >&2
  else
    echo "hack/e2e-client.sh: $PYTHON has no venv module; install python3-venv" >&2
    exit 1
  fi
fi

rm -rf "$VENV"
mkdir -p "$CACHE"
"$PYTHON" -m venv "$VENV" >&2
"$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
"$VENV/bin/python" -m pip install --quiet --requirement "$REQUIREMENTS" >&2

# Fail here, not in the first run, when the install is unusable: nio must
# have its encryption support (it silently runs without it otherwise).
"$VENV/bin/python" - >&2 <<'PY'
import nio
import vodozemac  # noqa: F401
from nio.crypto import ENCRYPTION_ENABLED
if not ENCRYPTION_ENABLED:
    raise SystemExit("matrix-nio installed without end-to-end encryption support")
PY

touch "$MARKER"
echo "$VENV"
