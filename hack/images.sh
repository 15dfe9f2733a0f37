#!/usr/bin/env bash
# Builds the container images Caduceus' pods run, without any container
# registry: root file systems from Debian bookworm packages (mmdebstrap) and
# PyPI, wrapped into OCI image archives (images/oci-pack.py) that
# `ctr images import` reads. The recipes are images/<name>/recipe.sh; the
# versions are pinned below.
#
#   hack/images.sh build [NAME...] build every image (or the named ones:
#                                  pause synapse synapse-old postgres backup
#                                  element-web operator) missing from the
#                                  cache; prints the directory of the archives
#                                  (<name>.tar, one per image) on its last line
#   hack/images.sh import ADDRESS  import them into the containerd at socket
#                                  ADDRESS, namespace k8s.io, and check that
#                                  every reference is listed afterwards
#   hack/images.sh list            print the image references
#   hack/images.sh verify [NAME...] import into a private, throwaway containerd
#                                  and run each image's check as its pod's uid
#
#   CADUCEUS_CACHE    cache root (default ~/.cache/caduceus); archives live in
#                     $CADUCEUS_CACHE/images/<name>-<versions>-<recipe hash>/
#   CARGO_TARGET_DIR  cargo's target directory for the operator binary
#                     (default $CADUCEUS_CACHE/cargo-target)
#
# An image is rebuilt when its versions or its recipe (its images/<name>/
# directory, images/lib.sh, images/oci-pack.py) change; the operator image
# also when the binary changes (cargo builds incrementally on every run).
# Archives are written under a temporary name and renamed when complete,
# and builds hold a lock in the cache, so an interrupted or concurrent run
# never leaves a half archive that looks done. Needs root (mmdebstrap,
# chroot); installs mmdebstrap, containerd and the Python build tools with
# apt-get when they are missing.
set -euo pipefail

# ---- Pinned versions: the one place to change them. ----------------------
SYNAPSE_VERSION=1.163.2
OLD_SYNAPSE_VERSION=1.150.0
# Dependencies of the older release as PyPI stood on its release day, as in
# hack/synapse-old.sh.
OLD_SYNAPSE_CUTOFF=2026-03-24T15:00:00Z
PG_MAJOR=15
ELEMENT_WEB_VERSION=v1.12.3
OPERATOR_TAG=dev
REGISTRY=localhost/caduceus
# File times in the images (2026-01-01T00:00:00Z): fixed, so a rebuild from
# the same packages gives the same layer.
export SOURCE_DATE_EPOCH=1767225600

IMAGES=(pause synapse synapse-old postgres backup element-web operator)

# ---------------------------------------------------------------------------
die() {
  echo "hack/images.sh: $*" >&2
  exit 1
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${CADUCEUS_CACHE:-$HOME/.cache/caduceus}"
IMAGES_CACHE="$CACHE/images"
OUT="$IMAGES_CACHE/current"
export DEB_CACHE="$IMAGES_CACHE/debs"
export PIP_CACHE_DIR="$IMAGES_CACHE/pip-cache"
# Wheels come from PyPI (or the configured index) only, never a local directory.
unset PIP_FIND_LINKS
TOOLS_VENV="$IMAGES_CACHE/tools-venv"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/cargo-target}"

ref_of() {
  case "$1" in
    synapse) echo "$REGISTRY/element-hq/synapse:v$SYNAPSE_VERSION" ;;
    synapse-old) echo "$REGISTRY/element-hq/synapse:v$OLD_SYNAPSE_VERSION" ;;
    postgres) echo "$REGISTRY/postgres:$PG_MAJOR" ;;
    backup) echo "$REGISTRY/backup:pg$PG_MAJOR-restic" ;;
    element-web) echo "$REGISTRY/vectorim/element-web:$ELEMENT_WEB_VERSION" ;;
    operator) echo "$REGISTRY/operator:$OPERATOR_TAG" ;;
    pause) echo "$REGISTRY/pause:catatonit" ;;
    *) die "unknown image $1" ;;
  esac
}

recipe_of() {
  case "$1" in
    synapse-old) echo "$ROOT/images/synapse" ;;
    *) echo "$ROOT/images/$1" ;;
  esac
}

# The versions an image is built from, part of its cache key.
versions_of() {
  case "$1" in
    synapse) echo "$SYNAPSE_VERSION" ;;
    synapse-old) echo "$OLD_SYNAPSE_VERSION-$OLD_SYNAPSE_CUTOFF" ;;
    postgres | backup) echo "pg$PG_MAJOR" ;;
    element-web) echo "$ELEMENT_WEB_VERSION" ;;
    operator) echo "$OPERATOR_TAG-$(sha256sum "$OPERATOR_BINARY" | cut -c1-16)" ;;
    pause) echo "catatonit-$(dpkg-query -W -f='${Version}' catatonit)" ;;
  esac
}

# <name>-<versions>-<hash of the recipe, the shared helpers, the reference
# and SOURCE_DATE_EPOCH>.
key_of() {
  local name="$1" recipe hash
  recipe="$(recipe_of "$name")"
  hash="$(
    {
      echo "$(ref_of "$name") $(versions_of "$name") $SOURCE_DATE_EPOCH"
      (cd "$ROOT" && find "${recipe#"$ROOT"/}" images/lib.sh images/oci-pack.py -type f | LC_ALL=C sort | xargs sha256sum)
    } | sha256sum | cut -c1-12
  )"
  echo "$name-$(versions_of "$name" | tr ':/' '__')-$hash"
}

apt_updated=
need() { # need COMMAND PACKAGE
  command -v "$1" >/dev/null && return
  [[ "$(id -u)" == 0 ]] || die "$1 is missing; install the $2 package (or run as root)"
  if [[ -z "$apt_updated" ]]; then
    apt-get update -qq >&2
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >&2
}

build_tools() {
  [[ "$(id -u)" == 0 ]] || die "building images needs root (mmdebstrap in root mode, chroot)"
  need mmdebstrap mmdebstrap
  need catatonit catatonit
  need python3 python3
  # Synapse's wheels are built on the host with bookworm's Python, which is
  # the image's; psycopg2 compiles against libpq.
  [[ -x /usr/bin/python3 ]] || die "/usr/bin/python3 (Debian's Python 3.11) is needed"
  /usr/bin/python3 -c 'import ensurepip' 2>/dev/null || need __none__ python3-venv
  [[ -f /usr/include/python3.11/Python.h ]] || need __none__ python3-dev
  need gcc gcc
  need pg_config libpq-dev
  # A current pip (25.3 or newer) for --uploaded-prior-to.
  if ! "$TOOLS_VENV/bin/pip" install --help 2>/dev/null | grep -q -- --uploaded-prior-to; then
    rm -rf "$TOOLS_VENV"
    /usr/bin/python3 -m venv "$TOOLS_VENV" >&2
    "$TOOLS_VENV/bin/pip" install --quiet --upgrade pip >&2
    "$TOOLS_VENV/bin/pip" install --help | grep -q -- --uploaded-prior-to ||
      die "pip $("$TOOLS_VENV/bin/pip" --version) has no --uploaded-prior-to"
  fi
}

# The operator binary: glibc, statically linked (no musl target here; kube
# uses rustls, so no OpenSSL). Sets OPERATOR_BINARY.
build_operator_binary() {
  command -v cargo >/dev/null || die "cargo is needed for the operator image"
  echo "building the operator binary (cargo, static glibc) in $CARGO_TARGET_DIR" >&2
  (cd "$ROOT" && RUSTFLAGS='-C target-feature=+crt-static' nice -n 10 \
    cargo build --release --locked --bin caduceus --target x86_64-unknown-linux-gnu >&2)
  OPERATOR_BINARY="$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/caduceus"
  [[ -x "$OPERATOR_BINARY" ]] || die "cargo built no $OPERATOR_BINARY"
  if ! file "$OPERATOR_BINARY" | grep -q 'static'; then
    die "$OPERATOR_BINARY is not statically linked: $(file -b "$OPERATOR_BINARY")"
  fi
  export OPERATOR_BINARY
}

build_image() {
  local name="$1" key dir work started
  key="$(key_of "$name")"
  dir="$IMAGES_CACHE/$key"
  if [[ ! -f "$dir/image.tar" ]]; then
    echo "building $(ref_of "$name") ($key)" >&2
    started="$(date +%s)"
    work="$(mktemp -d "$IMAGES_CACHE/.work-$name.XXXXXX")"
    # shellcheck disable=SC2064  # expand now: the trap must name this dir.
    trap "rm -rf '$work'" EXIT
    (
      export REF WORK OUT_ROOTFS OUT_CONFIG RECIPE_DIR PG_MAJOR ELEMENT_WEB_VERSION TOOLS_VENV
      REF="$(ref_of "$name")"
      WORK="$work"
      OUT_ROOTFS="$work/rootfs.tar"
      OUT_CONFIG="$work/config.json"
      RECIPE_DIR="$(recipe_of "$name")"
      case "$name" in
        synapse) SYNAPSE_VERSION="$SYNAPSE_VERSION" SYNAPSE_CUTOFF= ;;
        synapse-old) SYNAPSE_VERSION="$OLD_SYNAPSE_VERSION" SYNAPSE_CUTOFF="$OLD_SYNAPSE_CUTOFF" ;;
      esac
      # shellcheck source=images/lib.sh
      . "$ROOT/images/lib.sh"
      # shellcheck disable=SC1090
      . "$RECIPE_DIR/recipe.sh"
    )
    python3 "$ROOT/images/oci-pack.py" "$work/rootfs.tar" "$work/image.tar" "$work/config.json"
    mkdir -p "$dir"
    ref_of "$name" >"$dir/ref"
    echo "$(($(date +%s) - started))" >"$dir/build-seconds"
    # The archive last, renamed into place: its presence means complete.
    mv "$work/image.tar" "$dir/image.tar.part"
    mv "$dir/image.tar.part" "$dir/image.tar"
    rm -rf "$work"
    trap - EXIT
    echo "built $(ref_of "$name") in $(cat "$dir/build-seconds")s: $(du -h "$dir/image.tar" | cut -f1) compressed" >&2
  fi
  ln -sfn "../$key/image.tar" "$OUT/.$name.tar.new"
  mv -T "$OUT/.$name.tar.new" "$OUT/$name.tar"
}

cmd_build() {
  mkdir -p "$IMAGES_CACHE" "$OUT"
  exec 9>"$IMAGES_CACHE/.lock"
  flock 9
  build_tools
  local name names=("$@")
  ((${#names[@]})) || names=("${IMAGES[@]}")
  for name in "${names[@]}"; do
    ref_of "$name" >/dev/null
  done
  if [[ " ${names[*]} " == *" operator "* ]]; then
    build_operator_binary
  fi
  for name in "${names[@]}"; do
    build_image "$name"
  done
  cmd_list >"$OUT/refs"
  echo "$OUT"
}

cmd_list() {
  local name
  for name in "${IMAGES[@]}"; do
    ref_of "$name"
  done
}

archives() { # archives NAME...
  local name
  for name in "$@"; do
    [[ -f "$OUT/$name.tar" ]] || die "no archive of $(ref_of "$name") in $OUT; run hack/images.sh build first"
    echo "$OUT/$name.tar"
  done
}

# import_into ADDRESS NAME...
import_into() {
  local address="$1" archive listed ref name missing=()
  shift
  need ctr containerd
  for archive in $(archives "$@"); do
    echo "importing $(readlink -f "$archive")" >&2
    ctr --address "$address" -n k8s.io images import "$archive" >&2
  done
  listed="$(ctr --address "$address" -n k8s.io images list --quiet)"
  for name in "$@"; do
    ref="$(ref_of "$name")"
    grep -qxF "$ref" <<<"$listed" || missing+=("$ref")
  done
  ((${#missing[@]} == 0)) || die "not listed after the import: ${missing[*]}"
  echo "imported into $address (namespace k8s.io): $(for name in "$@"; do ref_of "$name"; done | tr '\n' ' ')" >&2
}

cmd_import() {
  [[ -n "${1:-}" ]] || die "usage: hack/images.sh import ADDRESS (containerd's socket)"
  import_into "$1" "${IMAGES[@]}"
}

# ---- verify: a private containerd, stopped on exit ------------------------
cmd_verify() {
  local names=("$@")
  ((${#names[@]})) || names=("${IMAGES[@]}")
  [[ "$(id -u)" == 0 ]] || die "verify needs root (it runs containerd)"
  need containerd containerd
  need runc runc
  need curl curl
  local dir pid
  dir="$(mktemp -d /tmp/caduceus-images-verify.XXXXXX)"
  cat >"$dir/config.toml" <<EOF
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$dir/containerd.sock"
[ttrpc]
  address = "$dir/containerd.sock.ttrpc"
EOF
  containerd --config "$dir/config.toml" >"$dir/containerd.log" 2>&1 &
  pid=$!
  # shellcheck disable=SC2064
  trap "verify_cleanup '$dir' $pid" EXIT
  local sock="$dir/containerd.sock" i
  for i in $(seq 50); do
    ctr --address "$sock" version >/dev/null 2>&1 && break
    sleep 0.2
  done
  ctr --address "$sock" version >/dev/null || die "the private containerd did not start: $(tail -5 "$dir/containerd.log")"
  import_into "$sock" "${names[@]}"
  VERIFY_DIR="$dir" SOCK="$sock" verify_images "${names[@]}"
  echo "verified: ${names[*]}" >&2
}

verify_cleanup() {
  local dir="$1" pid="$2" task
  for task in $(ctr --address "$dir/containerd.sock" -n k8s.io tasks list --quiet 2>/dev/null); do
    ctr --address "$dir/containerd.sock" -n k8s.io tasks kill --signal SIGKILL "$task" >/dev/null 2>&1 || true
  done
  sleep 1
  for task in $(ctr --address "$dir/containerd.sock" -n k8s.io containers list --quiet 2>/dev/null); do
    ctr --address "$dir/containerd.sock" -n k8s.io tasks delete --force "$task" >/dev/null 2>&1 || true
    ctr --address "$dir/containerd.sock" -n k8s.io containers delete "$task" >/dev/null 2>&1 || true
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  # Snapshots are overlay mounts under the root; unmount before removing.
  { grep -o " $dir/[^ ]*" /proc/mounts || true; } | sort -r | while read -r mount; do umount $mount 2>/dev/null || true; done
  rm -rf "$dir"
}

# run_check NAME UID COMMAND... : a one-off container with a read-only root
# file system. ctr 1.6's `run` has no --user: it runs as the image's User,
# which is the uid of the image's pods (UID is only logged; the image's
# config is checked against it).
image_user() {
  tar -xOf "$OUT/$1.tar" index.json >/dev/null # the archive is readable
  python3 - "$OUT/$1.tar" <<'PY'
import json, sys, tarfile
with tarfile.open(sys.argv[1]) as archive:
    blob = lambda digest: json.load(archive.extractfile("blobs/sha256/" + digest.split(":")[1]))
    manifest = blob(json.load(archive.extractfile("index.json"))["manifests"][0]["digest"])
    print(blob(manifest["config"]["digest"])["config"].get("User", ""))
PY
}
# A writable directory owned by UID, bind-mounted at DST: what an emptyDir
# with the pod's fsGroup is.
empty_dir() { # empty_dir UID DST
  local src
  src="$(mktemp -d "$VERIFY_DIR/emptydir.XXXXXX")"
  chown "$1:$1" "$src"
  chmod 2775 "$src"
  echo "type=bind,src=$src,dst=$2,options=rbind:rw"
}
ctr_k8s() { ctr --address "$SOCK" -n k8s.io "$@"; }
run_check() {
  local name="$1" user="$2"
  shift 2
  echo "check $(ref_of "$name") as $user: $*" >&2
  [[ "$(image_user "$name")" == "$user" ]] || die "$(ref_of "$name") runs as $(image_user "$name"), not $user"
  ctr_k8s run --rm --read-only \
    --mount "$(empty_dir "${user%%:*}" /tmp)" \
    "$(ref_of "$name")" "verify-$name-$RANDOM" "$@"
}

verify_images() {
  local version name
  for name in "$@"; do
    case "$name" in
      synapse | synapse-old) verify_synapse "$name" ;;
      operator)
        run_check operator 65532:65532 /caduceus --help >/dev/null
        echo "operator: /caduceus --help ok" >&2
        ;;
      backup) run_check backup 991:991 /bin/sh -c 'restic version && pg_dump --version && pg_restore --version && psql --version && for t in base64 basename cat cmp cp cut date find grep mkdir mktemp mv rm sed sort tail tar tr wc; do command -v $t >/dev/null || { echo "missing $t"; exit 1; }; done && echo tools ok' ;;
      postgres) verify_postgres ;;
      pause)
        run_check pause 65535:65535 /catatonit --version >/dev/null
        echo "pause: /catatonit --version ok" >&2
        ;;
      element-web) verify_element_web ;;
    esac
  done
}

verify_synapse() {
  local name="$1" version
  [[ "$name" == synapse ]] && version="$SYNAPSE_VERSION" || version="$OLD_SYNAPSE_VERSION"
  run_check "$name" 991:991 python -c "import sys, synapse, synapse.app.homeserver, psycopg2, authlib; print('synapse', synapse.__version__, 'psycopg2', psycopg2.__version__, 'libpq', psycopg2.extensions.libpq_version()); assert synapse.__version__ == '$version'"
  run_check "$name" 991:991 python3 -c 'import sys; print(sys.executable, sys.version.split()[0])'
  # A real start on a read-only root: a generated configuration (SQLite)
  # in /tmp, then the homeserver until it answers /health.
  local id="verify-$name" pid i health=
  ctr_k8s run --detach --read-only --log-uri "file://$VERIFY_DIR/$id.log" \
    --mount "$(empty_dir 991 /tmp)" "$(ref_of "$name")" "$id" sh -c 'cd /tmp &&
      python -m synapse.app.homeserver --server-name test.local --config-path /tmp/h.yaml \
        --generate-config --report-stats=no >/dev/null &&
      exec python -m synapse.app.homeserver -c /tmp/h.yaml' >/dev/null
  pid="$(ctr_k8s tasks list | awk -v id="$id" '$1 == id {print $2}')"
  for i in $(seq 90); do
    health="$(nsenter --net="/proc/$pid/ns/net" curl -fsS http://127.0.0.1:8008/health 2>/dev/null)" && break
    ctr_k8s tasks list | grep -q "^$id .*RUNNING" || break
    sleep 1
  done
  stop_container "$id"
  [[ "$health" == OK ]] || die "Synapse $version did not answer /health: $(tail -20 "$VERIFY_DIR/$id.log")"
  echo "synapse $version: started on a read-only root, /health OK after ${i}s" >&2
}

stop_container() {
  ctr_k8s tasks kill --signal SIGKILL "$1" >/dev/null 2>&1 || true
  for _ in $(seq 20); do
    ctr_k8s tasks list | grep -q "^$1 .*RUNNING" || break
    sleep 0.5
  done
  ctr_k8s tasks delete "$1" >/dev/null 2>&1 || true
  ctr_k8s containers delete "$1" >/dev/null 2>&1 || true
}

# PostgreSQL as the operator runs it: uid 999, read-only root, the data
# volume and /var/run/postgresql, /tmp, /dev/shm writable.
verify_postgres() {
  local data="$VERIFY_DIR/pgdata" id start i ready
  mkdir -p "$data" && chown 999:999 "$data"
  # The first start initialises the volume, the second finds it initialised.
  for start in first second; do
    id="verify-postgres-$start"
    echo "check $(ref_of postgres): $start start as 999:999" >&2
    ctr_k8s run --detach --read-only --log-uri "file://$VERIFY_DIR/$id.log" \
      --env POSTGRES_USER=synapse --env POSTGRES_DB=synapse --env POSTGRES_PASSWORD=s3cret \
      --env "POSTGRES_INITDB_ARGS=--encoding=UTF8 --locale=C" --env PGDATA=/var/lib/postgresql/data/pgdata \
      --mount "type=bind,src=$data,dst=/var/lib/postgresql/data,options=rbind:rw" \
      --mount "$(empty_dir 999 /var/run/postgresql)" \
      --mount "$(empty_dir 999 /tmp)" \
      --mount "$(empty_dir 999 /dev/shm)" \
      "$(ref_of postgres)" "$id" >/dev/null
    ready=
    for i in $(seq 60); do
      # The probe of the managed database's pods.
      if ctr_k8s tasks exec --exec-id "probe$i" --user 999:999 "$id" \
        pg_isready --host=127.0.0.1 --port=5432 --username=synapse --dbname=synapse >/dev/null 2>&1; then
        ready=1
        break
      fi
      sleep 1
    done
    [[ -n "$ready" ]] || die "postgres did not become ready: $(tail -20 "$VERIFY_DIR/$id.log")"
    # user | encoding | collate | ctype | scram password | listen | scram host rule
    ctr_k8s tasks exec --exec-id query --user 999:999 "$id" \
      env PGPASSWORD=s3cret psql --host=127.0.0.1 --username=synapse --dbname=synapse --tuples-only --no-align --command \
      "SELECT current_user, pg_encoding_to_char(encoding), datcollate, datctype, (SELECT rolpassword LIKE 'SCRAM-SHA-256%' FROM pg_authid WHERE rolname = 'synapse'), current_setting('listen_addresses'), (SELECT count(*) FROM pg_hba_file_rules WHERE type = 'host' AND auth_method = 'scram-sha-256' AND address = 'all') FROM pg_database WHERE datname = current_database()" >&2
    ctr_k8s tasks kill --signal SIGTERM "$id" >/dev/null
    for i in $(seq 30); do
      ctr_k8s tasks list | grep -q "^$id .*RUNNING" || break
      sleep 1
    done
    stop_container "$id"
  done
  if grep -q initialising "$VERIFY_DIR/verify-postgres-second.log" ||
    ! grep -q 'database system is ready' "$VERIFY_DIR/verify-postgres-second.log"; then
    die "the second start did not reuse the initialised volume: $(tail -20 "$VERIFY_DIR/verify-postgres-second.log")"
  fi
  echo "postgres: initialised UTF8/C with a scram password, restarted on the same volume" >&2
}

# Element Web as the operator runs it: uid 101, read-only root, emptyDirs
# for /tmp, /var/cache/nginx, /etc/nginx/conf.d, config.json and the
# well-known server mounted as files.
verify_element_web() {
  local files="$VERIFY_DIR/element" id=verify-element-web pid netns
  mkdir -p "$files/well-known"
  echo '{"default_server_config":{"m.homeserver":{"base_url":"https://matrix.test"}},"brand":"Caduceus test"}' >"$files/config.json"
  echo '{"m.homeserver":{"base_url":"https://matrix.test/"}}' >"$files/well-known/client"
  cat >"$files/well-known.conf" <<'EOF'
server {
    listen 8081;
    listen [::]:8081;
    server_name _;
    default_type application/json;
    add_header Access-Control-Allow-Origin "*" always;
    location = /.well-known/matrix/client {
        alias /etc/caduceus/well-known/client;
    }
    location / {
        return 404;
    }
}
EOF
  chmod -R a+rX "$files"
  echo "check $(ref_of element-web): nginx as 101:101 on 8080 and 8081" >&2
  # conf.d is an emptyDir; the well-known server is bind-mounted into it
  # after it.
  ctr_k8s run --detach --read-only --log-uri "file://$VERIFY_DIR/$id.log" --env ELEMENT_WEB_PORT=8080 \
    --mount "$(empty_dir 101 /tmp)" \
    --mount "$(empty_dir 101 /var/cache/nginx)" \
    --mount "$(empty_dir 101 /etc/nginx/conf.d)" \
    --mount "type=bind,src=$files/config.json,dst=/app/config.json,options=rbind:ro" \
    --mount "type=bind,src=$files/well-known.conf,dst=/etc/nginx/conf.d/well-known.conf,options=rbind:ro" \
    --mount "type=bind,src=$files/well-known,dst=/etc/caduceus/well-known,options=rbind:ro" \
    "$(ref_of element-web)" "$id" >/dev/null
  sleep 2
  ctr_k8s tasks exec --exec-id nginx-t --user 101:101 "$id" nginx -t >&2 ||
    die "nginx -t failed in $(ref_of element-web): $(tail -20 "$VERIFY_DIR/$id.log")"
  pid="$(ctr_k8s tasks list | awk -v id="$id" '$1 == id {print $2}')"
  netns="/proc/$pid/ns/net"
  local config client index
  config="$(nsenter --net="$netns" curl -fsS http://127.0.0.1:8080/config.json)"
  client="$(nsenter --net="$netns" curl -fsS http://127.0.0.1:8081/.well-known/matrix/client)"
  index="$(nsenter --net="$netns" curl -fsS http://127.0.0.1:8080/)"
  stop_container "$id"
  grep -q 'Caduceus test' <<<"$config" || die "/config.json is not the mounted config: $config"
  grep -q 'matrix.test' <<<"$client" || die "the well-known client document is wrong: $client"
  grep -q placeholder <<<"$index" || die "/ does not serve the placeholder: $index"
  echo "element-web: /config.json, /.well-known/matrix/client and / served" >&2
}

# One compound command ending in exit: bash has read all of it before it
# runs, so editing this file during a long build cannot derail the run.
{
  case "${1:-}" in
    build) shift; cmd_build "$@" ;;
    import) shift; cmd_import "$@" ;;
    list) cmd_list ;;
    verify) shift; cmd_verify "$@" ;;
    *) die "usage: hack/images.sh build [NAME...] | import ADDRESS | list | verify [NAME...]" ;;
  esac
  exit
}
