#!/usr/bin/env bash
# The whole test suite, on a fresh machine: formatting and lints, the pure
# tests, the control-plane tests against a real kube-apiserver and etcd, the
# real-Synapse, backup and upgrade tests against real PostgreSQL, and the
# end-to-end suite on a real node. Everything it needs is built or installed
# here and cached under ~/.cache/caduceus, keyed by version; what it starts,
# it stops.
#
# No part is skipped: a missing component fails the run and says which.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CADUCEUS_CACHE="${CADUCEUS_CACHE:-$HOME/.cache/caduceus}"
# Keeps compiled dependencies between runs of fresh clones (as in CI).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CADUCEUS_CACHE/cargo-target}"
export CADUCEUS_BIN="$CARGO_TARGET_DIR/debug/caduceus"

started=$SECONDS
step() {
  echo
  echo "=== $* ($((SECONDS - started)) s)"
}

step "system packages"
hack/deps.sh

step "formatting and lints"
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings

step "generated files are current"
cargo build --locked
diff -u crds/messengerinstances.caduceus.dev.yaml <("$CADUCEUS_BIN" crd) ||
  { echo "crds/ is stale: run 'cargo run -- crd > crds/messengerinstances.caduceus.dev.yaml'"; exit 1; }
diff -u config/rbac/role.yaml <("$CADUCEUS_BIN" rbac) ||
  { echo "config/rbac/role.yaml is stale: run 'cargo run -- rbac > config/rbac/role.yaml'"; exit 1; }

step "Argo CD health check (Lua 5.1)"
lua5.1 tests/argocd/run.lua

step "the schema table matches the Synapse releases on PyPI"
diff -u <("$CADUCEUS_BIN" releases) <(python3 hack/synapse-schema.py $("$CADUCEUS_BIN" releases | cut -d' ' -f1)) ||
  { echo "src/plan/rollout/schema.rs disagrees with the releases' SCHEMA_VERSION/SCHEMA_COMPAT_VERSION"; exit 1; }

# Every cached prerequisite is prepared here, once and one after another,
# before any test runs: tests in parallel must never race to fill a cache.
step "Kubernetes from its Go modules: control plane and node (cached)"
hack/build-control-plane.sh node >/dev/null
step "helm from its Go module (cached)"
# tests/packaging.rs lints, renders and installs the chart with it.
CADUCEUS_HELM="$(hack/helm.sh | tail -n1)"
export CADUCEUS_HELM
step "CloudNativePG CRDs, Synapse releases and the Matrix crypto client (cached)"
hack/cnpg-crds.sh >/dev/null
SYNAPSE_VENV="$(hack/synapse.sh | tail -n1)"
export SYNAPSE_VENV
hack/synapse-old.sh >/dev/null
CADUCEUS_E2E_PYTHON="$(hack/e2e-client.sh | tail -n1)/bin/python"
export CADUCEUS_E2E_PYTHON
step "container images from Debian packages and PyPI (cached)"
hack/images.sh build >/dev/null

step "control plane (kube-apiserver and etcd)"
stop_all() {
  hack/node.sh stop || true
  hack/control-plane.sh stop || true
  hack/postgres.sh stop || true
}
trap stop_all EXIT
hack/control-plane.sh start >/dev/null
# shellcheck disable=SC1091
source "${CADUCEUS_CP_DIR:-/tmp/caduceus-control-plane}/env"

step "PostgreSQL"
hack/postgres.sh start >/dev/null
eval "$(hack/postgres.sh env)"

step "Rust tests: pure and control plane"
cargo test --locked -- --test-threads=4

step "real Synapse"
"$SYNAPSE_VENV/bin/python" -m pytest -q tests/synapse

step "the Matrix crypto client against a local Synapse (the end-to-end suite's own proof)"
"$SYNAPSE_VENV/bin/python" -m pytest -q -p no:cacheprovider tests/e2e/test_client_local.py

step "real backups: restic and pg_dump against real PostgreSQL and Synapse"
"$SYNAPSE_VENV/bin/python" -m pytest -q tests/backup

step "real upgrade: an older Synapse's database, pre-upgrade backup, newer Synapse, smoke test"
"$SYNAPSE_VENV/bin/python" -m pytest -q tests/upgrade

step "end to end on a real node: the operator from its Helm chart, pods, Jobs, Services, DNS"
# The control-plane tier's API server and PostgreSQL are done; the node
# gets the machine to itself.
hack/control-plane.sh stop
hack/postgres.sh stop
hack/node.sh start >/dev/null
(
  # shellcheck disable=SC1091
  source "${CADUCEUS_NODE_DIR:-/tmp/caduceus-node}/env"
  "$SYNAPSE_VENV/bin/python" -m pytest -q -p no:cacheprovider --durations=0 tests/e2e/test_e2e.py || {
    echo "--- the operator's log (last 60 lines of $CADUCEUS_NODE_DIR/operator-e2e.log)"
    tail -n 60 "$CADUCEUS_NODE_DIR/operator-e2e.log" || true
    exit 1
  }
  cat "$CADUCEUS_NODE_DIR/e2e-numbers.json" && echo
)
hack/node.sh stop

step "done in $((SECONDS - started)) s"
