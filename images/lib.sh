# Helpers shared by the image recipes (images/*/recipe.sh); sourced by
# hack/images.sh, never run alone. Part of every image's recipe hash.

# debian_rootfs OUT.tar PACKAGES [MMDEBSTRAP-ARGS...]
#   A minimal Debian bookworm root file system with PACKAGES (comma
#   separated) and no recommends, documentation, man pages or translations,
#   written as an uncompressed tarball. Downloaded packages are kept in
#   $DEB_CACHE, so a rebuild does not fetch them again. Extra arguments
#   (hooks) are passed to mmdebstrap before the suite.
debian_rootfs() {
  local out="$1" packages="$2"
  shift 2
  mkdir -p "$DEB_CACHE"
  nice -n 10 mmdebstrap --quiet --variant=minbase --mode=root \
    --aptopt='APT::Install-Recommends "false"' \
    --aptopt='Acquire::Retries "3"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --skip=essential/unlink \
    --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
    --setup-hook="sync-in '$DEB_CACHE' /var/cache/apt/archives/" \
    --include="$packages" \
    "$@" \
    --customize-hook="sync-out /var/cache/apt/archives '$DEB_CACHE'" \
    --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/log/apt "$1"/var/log/dpkg.log "$1"/var/log/alternatives.log "$1"/var/cache/ldconfig/aux-cache' \
    bookworm "$out" \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main" >&2
}

# image_config OUT.json REF USER WORKDIR ENTRYPOINT-JSON CMD-JSON ENV...
#   The config oci-pack.py reads: the reference and the runtime settings.
image_config() {
  local out="$1" ref="$2" user="$3" workdir="$4" entrypoint="$5" cmd="$6"
  shift 6
  python3 - "$out" "$ref" "$user" "$workdir" "$entrypoint" "$cmd" "$@" <<'PY'
import json, sys
out, ref, user, workdir, entrypoint, cmd, *env = sys.argv[1:]
config = {"User": user, "WorkingDir": workdir, "Env": env}
if entrypoint != "null":
    config["Entrypoint"] = json.loads(entrypoint)
if cmd != "null":
    config["Cmd"] = json.loads(cmd)
json.dump({"ref": ref, "config": config,
           "labels": {"org.opencontainers.image.title": ref,
                      "org.opencontainers.image.source": "https://github.com/caduceus-dev/caduceus"}},
          open(out, "w"), indent=1)
PY
}

DEFAULT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
