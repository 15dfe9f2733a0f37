#!/usr/bin/env bash
# Runs the operator for real on the local control plane: starts etcd and
# kube-apiserver, installs the CRD and RBAC, runs the operator under its own
# identity, applies examples/umessenger.yaml and shows the instance and its
# objects.
#
# The local control plane has no kubelet and no controller-manager, so no pod
# ever runs: the demo plays their part by reporting each workload ready, the
# way the integration tests do. Everything else is the real API server.
#
#   DEMO_KEEP=1   leave the control plane and the operator running afterwards
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CADUCEUS_CACHE="${CADUCEUS_CACHE:-$HOME/.cache/caduceus}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CADUCEUS_CACHE/cargo-target}"

echo "--- building the operator"
cargo build --locked --quiet
BIN="$CARGO_TARGET_DIR/debug/caduceus"

echo "--- starting the control plane (built from Go modules on first use; cached after)"
# A control plane that was already running is left running afterwards.
started_here=1
hack/control-plane.sh env >/dev/null 2>&1 && started_here=""
hack/control-plane.sh start >/dev/null
# shellcheck disable=SC1091
source "${CADUCEUS_CP_DIR:-/tmp/caduceus-control-plane}/env"
admin() { kubectl --kubeconfig "$CADUCEUS_ADMIN_KUBECONFIG" "$@"; }

echo "--- running the operator as system:serviceaccount:caduceus-system:caduceus"
LOG="$CADUCEUS_CP_DIR/operator.log"
KUBECONFIG="$CADUCEUS_OPERATOR_KUBECONFIG" "$BIN" run --http-address 127.0.0.1:0 >"$LOG" 2>&1 &
OPERATOR=$!
cleanup() {
  if [[ "${DEMO_KEEP:-}" != 1 ]]; then
    kill "$OPERATOR" 2>/dev/null || true
    wait "$OPERATOR" 2>/dev/null || true
    [[ -n "$started_here" ]] && hack/control-plane.sh stop
  else
    echo "operator (pid $OPERATOR) and control plane left running; stop with: kill $OPERATOR; hack/control-plane.sh stop"
  fi
}
trap cleanup EXIT

echo "--- applying examples/umessenger.yaml"
admin create namespace messenger --dry-run=client -o yaml | admin apply --server-side -f - >/dev/null
admin apply --server-side -f examples/umessenger.yaml

echo "--- playing the kubelet: reporting each workload ready"
ready=""
for _ in $(seq 120); do
  for set in $(admin -n messenger get statefulsets -o name 2>/dev/null); do
    generation="$(admin -n messenger get "$set" -o jsonpath='{.metadata.generation}')"
    admin -n messenger patch "$set" --subresource=status --type=merge -p \
      "{\"status\":{\"observedGeneration\":$generation,\"replicas\":1,\"readyReplicas\":1,\"availableReplicas\":1,\"updatedReplicas\":1,\"currentReplicas\":1,\"currentRevision\":\"r\",\"updateRevision\":\"r\"}}" >/dev/null
  done
  for deploy in $(admin -n messenger get deployments -o name 2>/dev/null); do
    generation="$(admin -n messenger get "$deploy" -o jsonpath='{.metadata.generation}')"
    replicas="$(admin -n messenger get "$deploy" -o jsonpath='{.spec.replicas}')"
    admin -n messenger patch "$deploy" --subresource=status --type=merge -p \
      "{\"status\":{\"observedGeneration\":$generation,\"replicas\":$replicas,\"readyReplicas\":$replicas,\"availableReplicas\":$replicas,\"updatedReplicas\":$replicas}}" >/dev/null
  done
  if [[ "$(admin -n messenger get messengerinstance umessenger -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]; then
    ready=1
    break
  fi
  sleep 1
done

echo
admin -n messenger get messengerinstances
echo
KUBECONFIG="$CADUCEUS_ADMIN_KUBECONFIG" "$BIN" status umessenger -n messenger
echo
admin -n messenger get statefulsets,deployments,services,configmaps,secrets,persistentvolumeclaims,ingresses,networkpolicies,poddisruptionbudgets,cronjobs -l app.kubernetes.io/managed-by=caduceus
echo
admin -n messenger get events --field-selector involvedObject.name=umessenger | tail -n 8
if [[ -z "$ready" ]]; then
  echo "the instance did not become Ready; operator log: $LOG" >&2
  tail -n 30 "$LOG" >&2
  exit 1
fi
echo
echo "umessenger is Ready."
