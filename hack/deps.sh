#!/usr/bin/env bash
# Installs the Debian packages the tests use, when missing.
set -euo pipefail

needed=()
command -v kubectl >/dev/null || { echo "hack/deps.sh: kubectl is required on PATH" >&2; exit 1; }
command -v openssl >/dev/null || needed+=(openssl)
command -v lua5.1 >/dev/null || needed+=(lua5.1)
[[ -x /usr/lib/postgresql/15/bin/initdb ]] || needed+=(postgresql-15)
# The backup suite: restic as Debian ships it, the backup Jobs' restic.
command -v restic >/dev/null || needed+=(restic)
if ((${#needed[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "hack/deps.sh: missing packages ${needed[*]}; install them with apt-get" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${needed[@]}" >/dev/null
fi
echo "system packages present"
