#!/usr/bin/env bash
# Fetches CloudNativePG's CRDs from its Go module at a pinned release (the
# YAML is in the module's config/crd/bases/), cached outside the repository,
# so the control-plane tests validate the objects the operator writes against
# the real schema.
#
#   CNPG_VERSION    the cloudnative-pg release (default below)
#   CADUCEUS_CACHE  cache root (default ~/.cache/caduceus)
#
# Prints the directory holding the CRD files on its last line.
set -euo pipefail

CNPG_VERSION="${CNPG_VERSION:-v1.27.1}"
CACHE="${CADUCEUS_CACHE:-$HOME/.cache/caduceus}"
OUT="$CACHE/cnpg-crds-$CNPG_VERSION"

if [[ -f "$OUT/postgresql.cnpg.io_clusters.yaml" ]]; then
  echo "$OUT"
  exit 0
fi

command -v go >/dev/null || { echo "hack/cnpg-crds.sh: go is required (the CRDs come from the Go module proxy)" >&2; exit 1; }
# Tests running in parallel may call this at once on an empty cache: one
# fetches, the others wait and find the result.
mkdir -p "$CACHE"
exec 9>"$OUT.lock"
flock 9
if [[ -f "$OUT/postgresql.cnpg.io_clusters.yaml" ]]; then
  echo "$OUT"
  exit 0
fi
# GOFLAGS=-mod=mod lets `go mod download` run outside a module.
dir="$(GOFLAGS=-mod=mod go mod download -json "github.com/cloudnative-pg/cloudnative-pg@$CNPG_VERSION" |
  sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
[[ -d "$dir/config/crd/bases" ]] || { echo "hack/cnpg-crds.sh: no config/crd/bases in $dir" >&2; exit 1; }
rm -rf "$OUT.tmp"
mkdir -p "$OUT.tmp"
cp "$dir"/config/crd/bases/*.yaml "$OUT.tmp/"
chmod 644 "$OUT.tmp"/*.yaml
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
echo "$OUT"
