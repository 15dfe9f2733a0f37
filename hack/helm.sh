#!/usr/bin/env bash
# Builds helm from its Go module, cached outside the repository and keyed by
# version, so a second run does not rebuild. The chart tests and the README's
# Helm instructions use it; a machine with its own helm does not need it.
#
#   HELM_VERSION   helm release (default below: the v3 line whose Kubernetes
#                  libraries match the control plane's v1.34)
#   CADUCEUS_CACHE cache root (default ~/.cache/caduceus)
#
# Prints the path of the helm binary on its last line.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.19.5}"
CACHE="${CADUCEUS_CACHE:-$HOME/.cache/caduceus}"
BIN="$CACHE/bin/helm-$HELM_VERSION"
export GOFLAGS="${GOFLAGS:--mod=mod}"
export GOCACHE="${GOCACHE:-$CACHE/go-build}"

if [[ -x "$BIN/helm" ]]; then
  echo "$BIN/helm"
  exit 0
fi

command -v go >/dev/null || {
  echo "hack/helm.sh: go is required on PATH to build helm $HELM_VERSION" >&2
  exit 1
}

mkdir -p "$BIN"
work="$CACHE/src/helm-$HELM_VERSION"
mkdir -p "$work"
cd "$work"

# helm's own go.mod names the Go version it needs.
helm_dir="$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
[[ -n "$helm_dir" ]] || {
  echo "hack/helm.sh: could not download helm.sh/helm/v3@$HELM_VERSION" >&2
  exit 1
}
go_version="$(sed -n 's/^go \(.*\)$/\1/p' "$helm_dir/go.mod")"

cat >go.mod <<GOMOD
module caduceus.dev/helm

go $go_version

require helm.sh/helm/v3 $HELM_VERSION
GOMOD
cat >tools.go <<'GO'
//go:build tools

package helm

import _ "helm.sh/helm/v3/cmd/helm"
GO
echo "building helm $HELM_VERSION" >&2
go mod tidy >&2
# The version is stamped the way helm's Makefile does, so `helm version`
# reports the release rather than "v3.x-dev".
CGO_ENABLED=0 go build -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
  -o "$BIN/helm.tmp" helm.sh/helm/v3/cmd/helm
mv "$BIN/helm.tmp" "$BIN/helm"
echo "$BIN/helm"
