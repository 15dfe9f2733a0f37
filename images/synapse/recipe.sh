# The Synapse image: Debian bookworm's Python 3.11 with matrix-synapse and
# its postgres and oidc extras in a virtualenv at /opt/synapse, whose bin is
# first on PATH (the operator runs `python -m synapse.app.homeserver`, the
# smoke test `python3 /scripts/smoke-test.py`). Runs as synapse (991:991).
#
# The wheels are resolved and built on the host with the same Python
# (/usr/bin/python3 of bookworm, 3.11) — psycopg2 has no Linux wheels and
# compiles against libpq — then installed offline in the image, which
# therefore needs no compiler. With SYNAPSE_CUTOFF set, dependencies are
# resolved as PyPI stood then (`pip --uploaded-prior-to`, as
# hack/synapse-old.sh does).
#
# Inputs: SYNAPSE_VERSION, SYNAPSE_CUTOFF (may be empty), REF, WORK,
# OUT_ROOTFS, OUT_CONFIG, TOOLS_VENV (a venv with a current pip).

wheels="$WORK/wheels"
mkdir -p "$wheels"
cutoff=()
[[ -n "${SYNAPSE_CUTOFF:-}" ]] && cutoff=(--uploaded-prior-to "$SYNAPSE_CUTOFF")
# The build of psycopg2 runs in pip's isolated build environment.
nice -n 10 "$TOOLS_VENV/bin/pip" wheel --quiet --wheel-dir "$wheels" "${cutoff[@]}" \
  "matrix-synapse[postgres,oidc]==$SYNAPSE_VERSION" >&2

debian_rootfs "$OUT_ROOTFS" python3,python3-venv,libpq5,ca-certificates,tzdata \
  --customize-hook="copy-in '$wheels' /tmp" \
  --customize-hook='chroot "$1" python3 -m venv /opt/synapse' \
  --customize-hook="chroot \"\$1\" /opt/synapse/bin/pip install --quiet --no-index --no-cache-dir --find-links /tmp/wheels 'matrix-synapse[postgres,oidc]==$SYNAPSE_VERSION'" \
  --customize-hook='chroot "$1" /opt/synapse/bin/pip uninstall --quiet --yes pip setuptools' \
  --customize-hook='rm -rf "$1"/tmp/wheels' \
  --customize-hook="chroot \"\$1\" /opt/synapse/bin/python -c 'import sys, synapse, synapse.app.homeserver, psycopg2, authlib; assert synapse.__version__ == sys.argv[1], synapse.__version__' '$SYNAPSE_VERSION'" \
  --customize-hook='find "$1"/opt/synapse "$1"/usr/lib/python3.11 -name __pycache__ -type d -prune -exec rm -rf {} +' \
  --customize-hook='chroot "$1" /opt/synapse/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/synapse/lib >/dev/null' \
  --customize-hook='chroot "$1" /opt/synapse/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash /usr/lib/python3.11 >/dev/null || true' \
  --customize-hook='chroot "$1" groupadd --gid 991 synapse' \
  --customize-hook='chroot "$1" useradd --uid 991 --gid 991 --home-dir /data --no-create-home --shell /usr/sbin/nologin synapse' \
  --customize-hook='install -d -m 2775 -o 991 -g 0 "$1"/data'

# PYTHONDONTWRITEBYTECODE: the root file system is read-only; every module
# is compiled at build time.
image_config "$OUT_CONFIG" "$REF" 991:991 /data null '["python","-m","synapse.app.homeserver"]' \
  "PATH=/opt/synapse/bin:$DEFAULT_PATH" LANG=C.UTF-8 PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
  VIRTUAL_ENV=/opt/synapse
