#!/usr/bin/env bash
# The whole test suite, on a fresh machine: formatting and lints, the pure
# tests, the control-plane tests against a real kube-apiserver and etcd, and
# the real-Synapse tests against real PostgreSQL. Everything it needs is
# built or installed here and cached under ~/.cache/caduceus, keyed by
# version; what it starts, it stops.
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

step "control plane (kube-apiserver and etcd from their Go modules)"
hack/build-control-plane.sh >/dev/null
stop_all() {
  hack/control-plane.sh stop || true
  hack/postgres.sh stop || true
}
trap stop_all EXIT
hack/control-plane.sh start >/dev/null
# shellcheck disable=SC1091
source "${CADUCEUS_CP_DIR:-/tmp/caduceus-control-plane}/env"

step "PostgreSQL and Synapse"
hack/postgres.sh start >/dev/null
eval "$(hack/postgres.sh env)"
SYNAPSE_VENV="$(hack/synapse.sh | tail -n1)"
export SYNAPSE_VENV

step "helm (from its Go module)"
# tests/packaging.rs lints, renders and installs the chart with it.
CADUCEUS_HELM="$(hack/helm.sh | tail -n1)"
export CADUCEUS_HELM

step "Rust tests: pure and control plane"
cargo test --locked -- --test-threads=4

step "real Synapse"
"$SYNAPSE_VENV/bin/python" -m pytest -q tests/synapse

step "real backups: restic and pg_dump against real PostgreSQL and Synapse"
"$SYNAPSE_VENV/bin/python" -m pytest -q tests/backup

step "real upgrade: an older Synapse's database, pre-upgrade backup, newer Synapse, smoke test"
"$SYNAPSE_VENV/bin/python" -m pytest -q tests/upgrade

step "done in $((SECONDS - started)) s"
