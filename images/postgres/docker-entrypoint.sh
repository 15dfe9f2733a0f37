#!/bin/bash
# The entrypoint of Caduceus' PostgreSQL image, a small subset of the
# official postgres image's contract:
#
#   POSTGRES_PASSWORD     password of POSTGRES_USER (required on first start)
#   POSTGRES_USER         the superuser initdb creates (default postgres)
#   POSTGRES_DB           database created on first start (default: the user)
#   POSTGRES_INITDB_ARGS  extra initdb arguments (e.g. --encoding=UTF8 --locale=C)
#   PGDATA                the cluster's directory
#
# On an empty PGDATA it runs initdb (password authentication with
# scram-sha-256 for every host connection, trust on the local socket and
# loopback like the official image), runs /docker-entrypoint-initdb.d/*.sh
# and *.sql, then starts postgres in the foreground; on an initialised
# PGDATA it starts postgres at once. Runs as any uid: one without a passwd
# entry (OpenShift) gets one through nss_wrapper for initdb.
set -Eeuo pipefail

log() { echo "docker-entrypoint: $*" >&2; }

if [[ "${1:-}" == -* ]]; then
  set -- postgres "$@"
fi
if [[ "${1:-}" != postgres ]]; then
  exec "$@"
fi
if [[ "$(id -u)" == 0 ]]; then
  log "refusing to run as root; run as postgres (999) or any other non-root uid"
  exit 1
fi

: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA
POSTGRES_USER="${POSTGRES_USER:-postgres}"
POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
  if [[ -z "${POSTGRES_PASSWORD:-}" ]]; then
    log "PGDATA $PGDATA is empty and POSTGRES_PASSWORD is not set; refusing to create a database without a password"
    exit 1
  fi
  mkdir -p "$PGDATA"
  chmod 0700 "$PGDATA" 2>/dev/null || true

  # initdb looks the current uid up; give an unknown uid a passwd entry.
  if ! getent passwd "$(id -u)" >/dev/null; then
    wrapper=/usr/lib/x86_64-linux-gnu/libnss_wrapper.so
    export NSS_WRAPPER_PASSWD="$(mktemp)" NSS_WRAPPER_GROUP="$(mktemp)"
    echo "postgres:x:$(id -u):$(id -g):PostgreSQL:$PGDATA:/bin/false" >"$NSS_WRAPPER_PASSWD"
    echo "postgres:x:$(id -g):" >"$NSS_WRAPPER_GROUP"
    export LD_PRELOAD="$wrapper${LD_PRELOAD:+ $LD_PRELOAD}"
  fi

  log "initialising $PGDATA"
  # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is word-split on purpose.
  initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    ${POSTGRES_INITDB_ARGS:-} >&2
  if [[ -n "${NSS_WRAPPER_PASSWD:-}" ]]; then
    rm -f "$NSS_WRAPPER_PASSWD" "$NSS_WRAPPER_GROUP"
    unset LD_PRELOAD NSS_WRAPPER_PASSWD NSS_WRAPPER_GROUP
  fi
  printf '\nhost all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"

  # A private start on the socket only, to create the database.
  pg_ctl --pgdata="$PGDATA" --wait --silent \
    --options="-c listen_addresses='' -p 5432" start >&2
  export PGPASSWORD="$POSTGRES_PASSWORD"
  psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --host=/var/run/postgresql --port=5432
        --username="$POSTGRES_USER" --no-password)
  if [[ "$POSTGRES_DB" != postgres ]]; then
    exists="$("${psql[@]}" --dbname=postgres --tuples-only --no-align \
      --set db="$POSTGRES_DB" <<<"SELECT 1 FROM pg_database WHERE datname = :'db';")"
    if [[ -z "$exists" ]]; then
      "${psql[@]}" --dbname=postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";' >&2
    fi
  fi
  for file in /docker-entrypoint-initdb.d/*; do
    case "$file" in
      *.sh) log "running $file"; . "$file" ;;
      *.sql) log "running $file"; "${psql[@]}" --dbname="$POSTGRES_DB" -f "$file" >&2 ;;
      *) ;;
    esac
  done
  unset PGPASSWORD
  pg_ctl --pgdata="$PGDATA" --wait --silent --mode=fast stop >&2
  log "initialised; starting postgres"
fi

exec "$@"
