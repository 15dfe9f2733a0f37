#!/usr/bin/env bash
# Builds Kubernetes from its Go modules, cached outside the repository and
# keyed by version, so a second run does not rebuild.
#
#   hack/build-control-plane.sh        kube-apiserver and etcd (the control-plane tier)
#   hack/build-control-plane.sh node   also kubelet, kube-controller-manager,
#                                      kube-scheduler, kube-proxy and CoreDNS (the real node)
#
#   KUBE_VERSION     Kubernetes release (default below)
#   COREDNS_VERSION  CoreDNS release (default: the one kubeadm of that release installs)
#   CADUCEUS_CACHE   cache root (default ~/.cache/caduceus)
#
# Every binary is static (CGO_ENABLED=0) and stamped with its release, so
# `kubectl version` and the node report real versions. Prints the directory
# holding the binaries on its last line.
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.34.4}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.12.1}"
CACHE="${CADUCEUS_CACHE:-$HOME/.cache/caduceus}"
BIN="$CACHE/bin/kube-$KUBE_VERSION"
export GOFLAGS="${GOFLAGS:--mod=mod}"
export GOCACHE="${GOCACHE:-$CACHE/go-build}"

components=(kube-apiserver)
[[ "${1:-}" == node ]] && components+=(kubelet kube-controller-manager kube-scheduler kube-proxy)

# A binary counts as built when it reports the release it was stamped with.
built() { # binary
  [[ -x "$BIN/$1" ]] && "$BIN/$1" --version 2>/dev/null | grep -qF "$KUBE_VERSION"
}

missing=()
for component in "${components[@]}"; do
  built "$component" || missing+=("$component")
done
etcd_missing=""
[[ -x "$BIN/etcd" ]] || etcd_missing=1
coredns_missing=""
[[ "${1:-}" == node && ! -x "$BIN/coredns-$COREDNS_VERSION" ]] && coredns_missing=1
if ((${#missing[@]} == 0)) && [[ -z "$etcd_missing$coredns_missing" ]]; then
  echo "$BIN"
  exit 0
fi

mkdir -p "$BIN" "$CACHE/src"
# Two builds at once would race on the module directories and the binaries.
exec 9>"$CACHE/src/kube-$KUBE_VERSION.lock"
flock 9

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

if ((${#missing[@]})); then
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
  {
    echo "//go:build tools"
    echo
    echo "package controlplane"
    echo
    for component in kube-apiserver kubelet kube-controller-manager kube-scheduler kube-proxy; do
      echo "import _ \"k8s.io/kubernetes/cmd/$component\""
    done
  } >tools.go
  go mod tidy >&2

  # What the release's own build stamps (hack/lib/version.sh), so clients
  # can parse the version the binaries report.
  minor="${KUBE_VERSION#v1.}"
  minor="${minor%%.*}"
  ldflags="-s -w"
  for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $package.gitVersion=$KUBE_VERSION -X $package.gitMajor=1 -X $package.gitMinor=$minor"
    ldflags+=" -X $package.gitTreeState=clean -X $package.buildDate=1970-01-01T00:00:00Z"
  done
  for component in "${missing[@]}"; do
    echo "building $component $KUBE_VERSION (staging modules at $staging_version)" >&2
    CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$BIN/$component.tmp" "k8s.io/kubernetes/cmd/$component"
    mv "$BIN/$component.tmp" "$BIN/$component"
  done
fi

# Builds PACKAGE of MODULE@VERSION as $BIN/OUTPUT, from a module of its own
# that requires just that module (Go GO_VERSION).
build_module() { # name module version package output go_version [ldflags]
  local name="$1" module="$2" version="$3" package="$4" output="$5" go="$6" ldflags="${7:-}"
  mkdir -p "$CACHE/src/$name-$version"
  cd "$CACHE/src/$name-$version"
  printf 'module caduceus.dev/%s\n\ngo %s\n\nrequire %s %s\n' "$name" "$go" "$module" "$version" >go.mod
  printf '//go:build tools\n\npackage %s\n\nimport _ "%s"\n' "$name" "$package" >tools.go
  echo "building $name $version" >&2
  go mod tidy >&2
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldflags" -o "$BIN/$output.tmp" "$package"
  mv "$BIN/$output.tmp" "$BIN/$output"
}

if [[ -n "$etcd_missing" ]]; then
  build_module etcd go.etcd.io/etcd/server/v3 "$etcd_version" go.etcd.io/etcd/server/v3 etcd "$go_version"
  echo "$etcd_version" >"$BIN/etcd.version"
fi

if [[ -n "$coredns_missing" ]]; then
  # CoreDNS's own main package, with the plugins its release compiles in.
  coredns_dir="$(go mod download -json "github.com/coredns/coredns@$COREDNS_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
  build_module coredns github.com/coredns/coredns "$COREDNS_VERSION" github.com/coredns/coredns \
    "coredns-$COREDNS_VERSION" "$(sed -n 's/^go \(.*\)$/\1/p' "$coredns_dir/go.mod")" \
    "-X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION"
fi
echo "$BIN"
