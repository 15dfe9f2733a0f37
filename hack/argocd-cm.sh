#!/usr/bin/env bash
# Writes config/argocd/argocd-cm-patch.yaml: the argocd-cm patch that installs
# config/argocd/health.lua as Argo CD's health check for MessengerInstance,
# the script inlined. With --check, changes nothing and fails when the
# patch is not current (tests/argocd/run.lua checks the same).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPT="$ROOT/config/argocd/health.lua"
PATCH="$ROOT/config/argocd/argocd-cm-patch.yaml"

render() {
  cat <<'YAML'
# Generated from config/argocd/health.lua by hack/argocd-cm.sh; do not edit.
#
# Installs the MessengerInstance health check into Argo CD: merge this into
# the argocd-cm ConfigMap (for example as the kustomize component in this
# directory). See config/argocd/README.md.
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
data:
  resource.customizations.health.caduceus.dev_MessengerInstance: |
YAML
  # Four spaces of indentation; empty lines stay empty.
  sed -e 's/^\(.\)/    \1/' "$SCRIPT"
}

case "${1:-}" in
  --check)
    diff -u "$PATCH" <(render) ||
      { echo "config/argocd/argocd-cm-patch.yaml is stale: run hack/argocd-cm.sh" >&2; exit 1; }
    ;;
  "")
    render >"$PATCH.tmp"
    mv "$PATCH.tmp" "$PATCH"
    ;;
  *)
    echo "usage: hack/argocd-cm.sh [--check]" >&2
    exit 2
    ;;
esac
