#!/usr/bin/env bash
# A throwaway PostgreSQL 15 for tests, from the Debian binaries, on loopback,
# with UTF8 and C collation in every database, as Synapse requires.
#
#   hack/postgres.sh start        start it (idempotent); prints the env lines
#   hack/postgres.sh stop         stop it; the state directory stays
#   hack/postgres.sh env          print `export CADUCEUS_PG_...` for a running server
#   hack/postgres.sh createdb DB  create a fresh database DB (dropped first if it exists)
#   hack/postgres.sh dropdb DB    drop database DB if it exists
#
#   CADUCEUS_PG_DIR   state directory (default /tmp/caduceus-postgres)
#   CADUCEUS_PG_BIN   PostgreSQL binaries (default /usr/lib/postgresql/15/bin)
#
# PostgreSQL refuses to run as root, so as root the server runs as the system
# user caduceus-pg (created when missing); otherwise as the calling user.
set -euo pipefail

DIR="${CADUCEUS_PG_DIR:-/tmp/caduceus-postgres}"
BIN="${CADUCEUS_PG_BIN:-/usr/lib/postgresql/15/bin}"
DATA="$DIR/data"
HOST=127.0.0.1
SUPERUSER=postgres
PG_USER=caduceus-pg

die() {
  echo "hack/postgres.sh: $*" >&2
  exit 1
}

# Runs a command as the server's user.
as_server_user() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u "$PG_USER" -- "$@"
  else
    "$@"
  fi
}

ensure_binaries() {
  if [[ -x "$BIN/postgres" ]]; then
    return
  fi
  if [[ $(id -u) -eq 0 && "$BIN" == /usr/lib/postgresql/15/bin ]] && command -v apt-get >/dev/null; then
    echo "hack/postgres.sh: installing postgresql-15 from Debian" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql-15 >&2 \
      || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql-15 >&2; }
  fi
  [[ -x "$BIN/postgres" ]] || die "PostgreSQL 15 binaries not found in $BIN; install the Debian package postgresql-15 or set CADUCEUS_PG_BIN"
}

ensure_user() {
  if [[ $(id -u) -eq 0 ]] && ! id "$PG_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$PG_USER"
  fi
}

# The postmaster's pid, from the state directory, if it is alive.
running_pid() {
  local pid
  [[ -f "$DATA/postmaster.pid" ]] || return 1
  pid="$(head -n 1 "$DATA/postmaster.pid")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_is_free() {
  # SO_REUSEADDR as PostgreSQL sets it, so our own port in TIME_WAIT counts as free.
  python3 -c 'import socket, sys; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
}

print_env() {
  running_pid >/dev/null || die "not running (state in $DIR); run hack/postgres.sh start"
  echo "export CADUCEUS_PG_HOST=$HOST CADUCEUS_PG_PORT=$(cat "$DIR/port") CADUCEUS_PG_SUPERUSER=$SUPERUSER CADUCEUS_PG_PASSWORD=$(cat "$DIR/password")"
}

start() {
  ensure_binaries
  ensure_user
  if running_pid >/dev/null; then
    print_env
    return
  fi
  mkdir -p "$DIR"
  chmod 755 "$DIR"
  if [[ ! -f "$DATA/PG_VERSION" ]]; then
    rm -rf "$DATA"
    # A fixed password only guards a loopback server that lives for a test
    # run; TCP logins need it, so the password Synapse sends is checked.
    (umask 077 && python3 -c 'import secrets; print(secrets.token_hex(16))' >"$DIR/password")
    install -d -m 700 "$DATA"
    if [[ $(id -u) -eq 0 ]]; then
      chown "$PG_USER" "$DATA"
      chown "$PG_USER" "$DIR/password"
    fi
    as_server_user "$BIN/initdb" -D "$DATA" -U "$SUPERUSER" -E UTF8 --locale=C \
      --auth-local=trust --auth-host=scram-sha-256 --pwfile="$DIR/password" >"$DIR/initdb.log" 2>&1 \
      || die "initdb failed; see $DIR/initdb.log"
  fi
  local port=""
  [[ -f "$DIR/port" ]] && port="$(cat "$DIR/port")"
  if [[ -z "$port" ]] || ! port_is_free "$port"; then
    port="$(free_port)"
    echo "$port" >"$DIR/port"
  fi
  install -d -m 755 "$DIR/socket"
  touch "$DIR/server.log"
  if [[ $(id -u) -eq 0 ]]; then
    chown "$PG_USER" "$DIR/socket" "$DIR/port" "$DIR/server.log"
  fi
  as_server_user "$BIN/pg_ctl" -D "$DATA" -l "$DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=$HOST -p $port -k $DIR/socket -c fsync=off -c max_connections=200" start >/dev/null \
    || die "PostgreSQL did not start; see $DIR/server.log"
  print_env
}

stop() {
  [[ -x "$BIN/pg_ctl" ]] || die "PostgreSQL 15 binaries not found in $BIN"
  if running_pid >/dev/null; then
    as_server_user "$BIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null
  fi
}

# psql-family tools over TCP as the superuser.
client() {
  running_pid >/dev/null || die "not running (state in $DIR); run hack/postgres.sh start"
  PGPASSWORD="$(cat "$DIR/password")" PGOPTIONS="-c client_min_messages=warning" "$BIN/$1" -h "$HOST" -p "$(cat "$DIR/port")" -U "$SUPERUSER" "${@:2}"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) print_env ;;
  createdb)
    [[ -n "${2:-}" ]] || die "usage: hack/postgres.sh createdb NAME"
    client dropdb --if-exists "$2"
    client createdb -E UTF8 --lc-collate=C --lc-ctype=C -T template0 "$2"
    ;;
  dropdb)
    [[ -n "${2:-}" ]] || die "usage: hack/postgres.sh dropdb NAME"
    client dropdb --if-exists --force "$2"
    ;;
  *) die "usage: hack/postgres.sh start|stop|env|createdb NAME|dropdb NAME" ;;
esac
