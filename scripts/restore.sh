#!/bin/sh
# Restores one stage of a Caduceus MessengerInstance from a snapshot written
# by backup.sh: the database (into an EMPTY database only), the media store
# and the keys. The very same script runs in the operator's restore Jobs and
# in the tests.
#
# Environment (see backup.sh for the repository and database variables):
#   CADUCEUS_STAGE         the stage's name (required); only snapshots tagged
#                          with this stage are restored
#   CADUCEUS_SNAPSHOT      latest (default) or a snapshot id
#   CADUCEUS_HOST          the restic host of the stage (default caduceus-<stage>)
#   CADUCEUS_BACKUP_ROOT   scratch directory whose media/ is the media store
#                          (default /backup)
#   CADUCEUS_KEYS_DIR      the stage's keys directory (default /keys)
#   CADUCEUS_KEYS_RESTORE  write: put the snapshot's keys files into
#                          CADUCEUS_KEYS_DIR; verify (default): the keys there
#                          (the keys Secret, read-only in a Job) must be the
#                          snapshot's, so the restored homeserver keeps its
#                          identity
#   CADUCEUS_DATABASE_WAIT_SECONDS
#                          how long to wait for the database to accept
#                          connections (default 0; the operator's Job: 300)
#   CADUCEUS_RESULT_FILE   as in backup.sh
#
# The last line on stdout is one JSON object, the result. Exit status: 0
# restored, 1 failure, 2 bad configuration, 3 refused because the database
# is not empty (nothing was changed).
set -eu
umask 077

STAGE="${CADUCEUS_STAGE:-}"
SNAPSHOT="${CADUCEUS_SNAPSHOT:-latest}"
HOST_NAME="${CADUCEUS_HOST:-caduceus-${STAGE}}"
ROOT="${CADUCEUS_BACKUP_ROOT:-/backup}"
KEYS_DIR="${CADUCEUS_KEYS_DIR:-/keys}"
KEYS_MODE="${CADUCEUS_KEYS_RESTORE:-verify}"
DATABASE_WAIT="${CADUCEUS_DATABASE_WAIT_SECONDS:-0}"
WORK="$ROOT/.caduceus-restore"
MEDIA_STAGING="$ROOT/media/.caduceus-restore"
SCRIPT=restore

# Exit status 3 is a refusal: nothing was changed.
failure_line() {
  outcome=failure
  [ "$1" = 3 ] && outcome=refused
  printf '{"result":"%s","stage":"%s","snapshot":"%s","message":"%s"}' \
    "$outcome" "$(json_escape "$STAGE")" "$(json_escape "$SNAPSHOT")" "$(json_escape "$2")"
}

cleanup() {
  rm -rf "$WORK" "$MEDIA_STAGING" 2>/dev/null || true
}

# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

# A restore only reads the repository, which the restore Job mounts
# read-only: restic must not try to write its lock there.
restic() { command restic --no-lock "$@"; }

[ -n "$STAGE" ] || fail 2 "CADUCEUS_STAGE is not set; it names the stage being restored"
[ -n "${RESTIC_REPOSITORY:-}" ] || fail 2 "RESTIC_REPOSITORY is not set; it names the restic repository (spec.backups.repository)"
[ -n "${RESTIC_PASSWORD:-}${RESTIC_PASSWORD_FILE:-}" ] ||
  fail 2 "no repository password: set RESTIC_PASSWORD (spec.backups.passwordSecretRef, key 'password')"
case "$SNAPSHOT" in
  latest) ;;
  *[!0-9a-f]* | '') fail 2 "snapshot '$SNAPSHOT' is neither 'latest' nor a snapshot id (hexadecimal, as 'caduceus backups list' shows)" ;;
esac
case "$DATABASE_WAIT" in
  *[!0-9]* | '') fail 2 "CADUCEUS_DATABASE_WAIT_SECONDS is '$DATABASE_WAIT'; it must be a number of seconds" ;;
esac
case "$KEYS_MODE" in
  write | verify) ;;
  *) fail 2 "CADUCEUS_KEYS_RESTORE is '$KEYS_MODE'; it must be 'write' or 'verify'" ;;
esac
[ -d "$ROOT/media" ] || fail 2 "the media store $ROOT/media does not exist; CADUCEUS_BACKUP_ROOT must contain the media store as media/"

temp_file errors
temp_file listing

# The repository must exist: a restore never creates one.
if ! restic cat config >/dev/null 2>"$errors"; then
  if grep -qi 'wrong password' "$errors"; then
    fail 1 "wrong repository password for $(where): the password in spec.backups.passwordSecretRef does not open this repository"
  elif grep -qiE 'Is there a repository at the following location|no such file or directory|does not exist|NoSuchBucket|NoSuchKey|config: not found' "$errors"; then
    fail 1 "there is no restic repository at $(where): check spec.backups.repository (volume claim, S3 bucket and prefix)"
  else
    fail 1 "cannot open the restic repository at $(where): $(tail -n 3 "$errors")"
  fi
fi

# Resolves the snapshot among this stage's snapshots only, so a restore never
# brings another stage's data (and identity) into this one.
if [ "$SNAPSHOT" = latest ]; then
  restic snapshots --json --host "$HOST_NAME" --tag "stage:$STAGE" >"$listing" 2>"$errors" ||
    fail 1 "listing the snapshots in $(where) failed: $(tail -n 3 "$errors")"
else
  restic snapshots --json --host "$HOST_NAME" --tag "stage:$STAGE" "$SNAPSHOT" >"$listing" 2>"$errors" || true
fi
# restic lists snapshots oldest first; the last full id is the newest.
id="$(grep -o '"id":"[0-9a-f]\{64\}"' "$listing" | tail -n 1 | sed 's/"id":"\([0-9a-f]*\)"/\1/')"
if [ -z "$id" ]; then
  if [ "$SNAPSHOT" = latest ]; then
    fail 1 "the repository at $(where) holds no snapshot of stage $STAGE (host $HOST_NAME)"
  fi
  fail 1 "snapshot $SNAPSHOT is not a snapshot of stage $STAGE in $(where); list them with 'caduceus backups list'"
fi
short="$(printf '%s' "$id" | cut -c1-8)"
# restic ignores --host and --tag for a snapshot named by id: check them.
if [ "$SNAPSHOT" != latest ]; then
  if ! grep -q "\"hostname\":\"$HOST_NAME\"" "$listing" || ! grep -q "\"stage:$STAGE\"" "$listing"; then
    fail 1 "snapshot $SNAPSHOT is not a snapshot of stage $STAGE in $(where); list them with 'caduceus backups list'"
  fi
fi

# A new stage's database starts together with this Job: wait for it, as
# long as CADUCEUS_DATABASE_WAIT_SECONDS allows (default: not at all).
waited=0
until pg_isready --quiet --timeout=5 >/dev/null 2>&1 || [ "$waited" -ge "$DATABASE_WAIT" ]; do
  sleep 5
  waited=$((waited + 5))
done

# The target database must be reachable and empty: a restore never writes
# over live data.
tables="$(psql --no-password --no-psqlrc --tuples-only --no-align --quiet -c \
  "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')" 2>"$errors")" || {
  if grep -qiE 'could not connect|connection refused|could not translate host name|timeout expired|server closed the connection|no route to host|is the server running' "$errors"; then
    fail 1 "the database is unreachable at ${PGHOST:-<PGHOST unset>}:${PGPORT:-5432}: $(tail -n 2 "$errors"); check that the stage's database is running"
  fi
  fail 1 "cannot inspect the database ${PGDATABASE:-?}: $(tail -n 2 "$errors")"
}
if [ "$tables" != 0 ]; then
  fail 3 "the database ${PGDATABASE:-?} at ${PGHOST:-?}:${PGPORT:-5432} is not empty ($tables tables); a restore only goes into an empty database and nothing was changed. Restore into a new stage, or empty the database yourself first if you really mean to replace it"
fi

cleanup
mkdir -p "$WORK"
restic restore "$id" --target "$WORK" --include /database --include /keys --include /kubernetes >/dev/null 2>"$errors" ||
  fail 1 "restoring the database dump and keys of snapshot $short failed: $(tail -n 3 "$errors")"
[ -f "$WORK/database/synapse.dump" ] || fail 1 "snapshot $short holds no database dump (/database/synapse.dump); it was not written by backup.sh"

# The keys first: a database under another signing key would be a homeserver
# whose past signatures no longer verify.
for file in "$WORK/keys"/*; do
  [ -f "$file" ] || continue
  name="$(basename "$file")"
  case "$KEYS_MODE" in
    write)
      mkdir -p "$KEYS_DIR"
      cp "$file" "$KEYS_DIR/$name"
      ;;
    verify)
      if [ ! -f "$KEYS_DIR/$name" ]; then
        fail 1 "the stage's keys Secret lacks $name from snapshot $short; recreate the Secret from the snapshot first: restic dump $short /kubernetes/keys-secret.yaml | kubectl apply -f -"
      fi
      if ! cmp -s "$file" "$KEYS_DIR/$name"; then
        fail 1 "the stage's keys Secret holds a different $name than snapshot $short (another identity); delete the Secret and recreate it from the snapshot: restic dump $short /kubernetes/keys-secret.yaml | kubectl apply -f -"
      fi
      ;;
  esac
done

# One transaction: a failed restore leaves the database empty, so it can be
# retried. Objects belong to the connecting user, as Synapse expects.
if ! pg_restore --no-password --no-owner --no-acl --single-transaction --exit-on-error \
  --dbname="${PGDATABASE:-synapse}" "$WORK/database/synapse.dump" 2>"$errors"; then
  fail 1 "pg_restore of snapshot $short failed and the database was left empty: $(tail -n 3 "$errors")"
fi

# Media: restored beside the store on the same volume, then moved in.
restic restore "$id" --target "$MEDIA_STAGING" --include /media >/dev/null 2>"$errors" ||
  fail 1 "restoring the media of snapshot $short failed (the database is restored; rerunning needs an empty database): $(tail -n 3 "$errors")"
media_files=0
if [ -d "$MEDIA_STAGING/media" ]; then
  for entry in "$MEDIA_STAGING/media"/* "$MEDIA_STAGING/media"/.[!.]*; do
    [ -e "$entry" ] || continue
    name="$(basename "$entry")"
    if [ -e "$ROOT/media/$name" ]; then
      cp -R -p "$entry/." "$ROOT/media/$name/" 2>/dev/null || cp -R -p "$entry" "$ROOT/media/"
    else
      mv "$entry" "$ROOT/media/$name"
    fi
  done
  media_files="$(find "$ROOT/media" -path "$MEDIA_STAGING" -prune -o -type f -print | wc -l | tr -d ' ')"
fi
cleanup

result "{\"result\":\"success\",\"snapshot\":\"$short\",\"time\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\",\"stage\":\"$(json_escape "$STAGE")\",\"mediaFiles\":$media_files,\"keys\":\"$KEYS_MODE\"}"
