#!/usr/bin/env bash
# Builds kube-apiserver and etcd from their Go modules, cached outside the
# repository and keyed by version, so a second run does not rebuild.
#
#   KUBE_VERSION   Kubernetes release (default below)
#   CADUCEUS_CACHE cache root (default ~/.cache/caduceus)
#
# Prints the directory holding the binaries on its last line.
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.34.4}"
CACHE="${CADUCEUS_CACHE:-$HOME/.cache/caduceus}"
BIN="$CACHE/bin/kube-$KUBE_VERSION"
export GOFLAGS="${GOFLAGS:--mod=mod}"
export GOCACHE="${GOCACHE:-$CACHE/go-build}"

if [[ -x "$BIN/kube-apiserver" && -x "$BIN/etcd" ]]; then
  echo "$BIN"
  exit 0
fi

mkdir -p "$BIN"
work="$CACHE/src/kube-$KUBE_VERSION"
mkdir -p "$work"
cd "$work"

# The Kubernetes release's own go.mod maps every staging module to a local
# path; a module outside the tree needs them at the matching v0.x.y instead.
kube_dir="$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
staging_version="v0.${KUBE_VERSION#v1.}"
# The etcd release this Kubernetes release is tested with.
etcd_version="v$(sed -n 's/^ETCD_VERSION=\${ETCD_VERSION:-\(.*\)}$/\1/p' "$kube_dir/hack/lib/etcd.sh")"
go_version="$(sed -n 's/^go \(.*\)$/\1/p' "$kube_dir/go.mod")"

{
  echo "module caduceus.dev/controlplane"
  echo
  echo "go $go_version"
  echo
  echo "require k8s.io/kubernetes $KUBE_VERSION"
  echo
  echo "replace ("
  sed -n 's#^\t\(k8s.io/[a-z0-9-]*\) => ./staging/src/k8s.io/.*$#\t\1 => \1 '"$staging_version"'#p' "$kube_dir/go.mod"
  echo ")"
} >go.mod
cat >tools.go <<'GO'
//go:build tools

package controlplane

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
echo "building kube-apiserver $KUBE_VERSION (staging modules at $staging_version)" >&2
go mod tidy >&2
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$BIN/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
mv "$BIN/kube-apiserver.tmp" "$BIN/kube-apiserver"

etcd_work="$CACHE/src/etcd-$etcd_version"
mkdir -p "$etcd_work"
cd "$etcd_work"
cat >go.mod <<GOMOD
module caduceus.dev/etcd

go $go_version

require go.etcd.io/etcd/server/v3 $etcd_version
GOMOD
cat >tools.go <<'GO'
//go:build tools

package etcd

import _ "go.etcd.io/etcd/server/v3"
GO
echo "building etcd $etcd_version" >&2
go mod tidy >&2
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3
mv "$BIN/etcd.tmp" "$BIN/etcd"
echo "$etcd_version" >"$BIN/etcd.version"
echo "$BIN"
