#!/usr/bin/env bash
# Runs Caduceus for real on a real single-node cluster on this machine
# (hack/node.sh): installs the operator with its Helm chart, applies
# examples/umessenger.yaml with the images built here (as a hospital with its
# own registry mirror sets `spec.images`), waits until the kubelet reports
# every workload ready and the instance is Ready, and shows Synapse answering
# through its Service.
#
# Nothing is simulated: when this machine cannot run containers, the node
# does not start and the demo fails saying why.
#
#   DEMO_KEEP=1   leave the node and the operator running afterwards
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CADUCEUS_CACHE="${CADUCEUS_CACHE:-$HOME/.cache/caduceus}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CADUCEUS_CACHE/cargo-target}"
NODE_DIR="${CADUCEUS_NODE_DIR:-/tmp/caduceus-node}"
TIMEOUT=900

echo "--- building the CLI"
cargo build --locked --quiet
BIN="$CARGO_TARGET_DIR/debug/caduceus"

echo "--- starting the node (Kubernetes, CoreDNS and images are built on first use; cached after)"
started_here=1
hack/node.sh env >/dev/null 2>&1 && started_here=""
hack/node.sh start >/dev/null
# shellcheck disable=SC1091
source "$NODE_DIR/env"
admin() { kubectl --kubeconfig "$CADUCEUS_ADMIN_KUBECONFIG" "$@"; }
cleanup() {
  if [[ "${DEMO_KEEP:-}" != 1 && -n "$started_here" ]]; then
    hack/node.sh stop
  else
    echo "the node is left running: source $NODE_DIR/env; stop it with: hack/node.sh stop"
  fi
}
trap cleanup EXIT
admin get nodes -o wide

echo "--- installing the operator with its Helm chart (image built here)"
HELM="$(hack/helm.sh | tail -n1)"
"$HELM" upgrade --install caduceus helm/caduceus --kubeconfig "$CADUCEUS_ADMIN_KUBECONFIG" \
  --namespace caduceus-system --create-namespace \
  --set image.repository=localhost/caduceus/operator --set image.tag=dev \
  --set image.pullPolicy=Never --set logFormat=text --wait --timeout 5m >/dev/null
admin -n caduceus-system get deployment,pods

echo "--- placing the node in both of the example's locations"
admin label node caduceus-node --overwrite \
  topology.kubernetes.io/region=eu-de caduceus.dev/location=mainz >/dev/null

echo "--- applying examples/umessenger.yaml, with the images of this machine"
admin apply --server-side -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Namespace
metadata:
  name: messenger
  labels:
    pod-security.kubernetes.io/enforce: restricted
YAML
admin patch --local -f examples/umessenger.yaml --type merge -o yaml -p '{
  "spec": {"images": {
    "registry": "localhost/caduceus",
    "postgres": "localhost/caduceus/postgres:15",
    "backup": "localhost/caduceus/backup:pg15-restic",
    "pullPolicy": "Never"}}}' | admin apply --server-side -f -

echo "--- waiting for the kubelet to run every workload and the instance to be Ready"
deadline=$((SECONDS + TIMEOUT))
ready=""
while ((SECONDS < deadline)); do
  if [[ "$(admin -n messenger get messengerinstance umessenger -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]; then
    ready=1
    break
  fi
  sleep 5
done

echo
admin -n messenger get messengerinstances
echo
KUBECONFIG="$CADUCEUS_ADMIN_KUBECONFIG" "$BIN" status umessenger -n messenger
echo
admin -n messenger get pods -o wide
echo
admin -n messenger get statefulsets,deployments,services,persistentvolumeclaims,cronjobs -l app.kubernetes.io/managed-by=caduceus
echo
admin -n messenger get events --field-selector involvedObject.name=umessenger | tail -n 8
if [[ -z "$ready" ]]; then
  echo "the instance did not become Ready within $TIMEOUT s; operator log:" >&2
  admin -n caduceus-system logs deployment/caduceus --tail 30 >&2 || true
  exit 1
fi

echo
for stage in beta production; do
  ip="$(admin -n messenger get service "umessenger-$stage-synapse" -o jsonpath='{.spec.clusterIP}')"
  echo "--- Synapse of $stage through its Service: GET http://$ip:8008/_matrix/client/versions"
  curl -fsS --max-time 10 "http://$ip:8008/_matrix/client/versions" |
    python3 -c 'import json, sys; print("versions:", " ".join(json.load(sys.stdin)["versions"][-4:]))'
done
echo
echo "umessenger is Ready: every pod runs on the real node."
