#!/usr/bin/env bash
# Installs an OLDER Synapse, the release an upgrade test starts from, into its
# own virtualenv cached outside the repository (as hack/synapse.sh does for
# the pinned release), so a second run installs nothing.
#
# Its dependencies are resolved as PyPI stood on the day the release came
# out (`pip install --uploaded-prior-to`), the way that release shipped,
# rather than against whatever was published since: an old Synapse is not
# guaranteed to work with the newest Twisted, pydantic or psycopg2, and the
# upgrade test must not start failing because of a dependency's later
# release.
#
#   OLD_SYNAPSE_VERSION  the matrix-synapse release (default below)
#   OLD_SYNAPSE_CUTOFF   only packages uploaded before this instant are used
#                        (ISO 8601; default: just after the default release
#                        was uploaded to PyPI, 2026-03-24T14:51Z)
#   CADUCEUS_CACHE       cache root (default ~/.cache/caduceus)
#   PYTHON               the interpreter the venv is made from (default python3)
#
# Prints the virtualenv's directory on its last line. The test suite runs
# Synapse from it (`$VENV/bin/python -m synapse.app.homeserver`); pytest
# itself runs in the venv of hack/synapse.sh.
set -euo pipefail

DEFAULT_VERSION=1.150.0
# The upload time of matrix_synapse-1.150.0*.whl on PyPI (PEP 700 simple
# index), rounded up to the next hour.
DEFAULT_CUTOFF=2026-03-24T15:00:00Z
OLD_SYNAPSE_VERSION="${OLD_SYNAPSE_VERSION:-$DEFAULT_VERSION}"
if [[ -z "${OLD_SYNAPSE_CUTOFF:-}" ]]; then
  if [[ "$OLD_SYNAPSE_VERSION" != "$DEFAULT_VERSION" ]]; then
    echo "hack/synapse-old.sh: set OLD_SYNAPSE_CUTOFF to the PyPI upload time of matrix-synapse $OLD_SYNAPSE_VERSION" >&2
    exit 1
  fi
  OLD_SYNAPSE_CUTOFF="$DEFAULT_CUTOFF"
fi
CACHE="${CADUCEUS_CACHE:-$HOME/.cache/caduceus}"
VENV="$CACHE/synapse-old-$OLD_SYNAPSE_VERSION"
PYTHON="${PYTHON:-python3}"

# The marker is written last and names the cutoff, so an interrupted install,
# or one made with another cutoff, is redone.
MARKER="$VENV/.caduceus-installed"
WANTED="matrix-synapse==$OLD_SYNAPSE_VERSION uploaded-prior-to=$OLD_SYNAPSE_CUTOFF"
if [[ -f "$MARKER" && -x "$VENV/bin/python" && "$(cat "$MARKER")" == "$WANTED" ]]; then
  echo "$VENV"
  exit 0
fi

if ! command -v "$PYTHON" >/dev/null; then
  echo "hack/synapse-old.sh: $PYTHON not found; install Python 3.10 or newer or set PYTHON" >&2
  exit 1
fi

rm -rf "$VENV"
mkdir -p "$CACHE"
"$PYTHON" -m venv "$VENV" >&2
# A current pip (25.3 or newer) knows --uploaded-prior-to; pip itself is
# taken as it is today.
"$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
if ! "$VENV/bin/python" -m pip install --help | grep -q -- --uploaded-prior-to; then
  echo "hack/synapse-old.sh: pip $("$VENV/bin/python" -m pip --version) has no --uploaded-prior-to; pip 25.3 or newer is needed" >&2
  exit 1
fi
"$VENV/bin/python" -m pip install --quiet --uploaded-prior-to "$OLD_SYNAPSE_CUTOFF" \
  "matrix-synapse[postgres,oidc]==$OLD_SYNAPSE_VERSION" >&2

# Fail here, not in the first test, when the install is unusable.
"$VENV/bin/python" - "$OLD_SYNAPSE_VERSION" >&2 <<'PY'
import sys
import authlib  # noqa: F401  the oidc extra
import psycopg2  # noqa: F401  the postgres extra
import synapse
import synapse.app.homeserver  # noqa: F401  imports Twisted and the rest
if synapse.__version__ != sys.argv[1]:
    sys.exit(f"installed Synapse {synapse.__version__}, wanted {sys.argv[1]}")
PY

echo "$WANTED" >"$MARKER"
echo "$VENV"
