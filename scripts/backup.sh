#!/bin/sh
# Backs up one stage of a Caduceus MessengerInstance into a restic repository:
# the PostgreSQL database (pg_dump, custom format), the media store and the
# stage's keys (signing key and generated secrets). The very same script runs
# in the operator's backup Jobs (mounted from a ConfigMap) and in the tests.
#
# Snapshot layout (paths inside the snapshot):
#   /database/synapse.dump        pg_dump --format=custom
#   /keys/<file>                  the keys Secret's files (signing.key, ...)
#   /kubernetes/keys-secret.yaml  the keys Secret as a manifest, to recreate it
#                                 in a new cluster before a restore
#   /media/...                    the media store
#
# Environment:
#   RESTIC_REPOSITORY, RESTIC_PASSWORD or RESTIC_PASSWORD_FILE   (restic's own)
#   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY                     (S3 repositories)
#   PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD, PGSSLMODE     (libpq's own)
#   CADUCEUS_STAGE            the stage's name (required)
#   CADUCEUS_REASON           scheduled (default) or pre-upgrade:<release>
#   CADUCEUS_HOST             the restic host name snapshots are grouped by
#                             (default caduceus-<stage>)
#   CADUCEUS_BACKUP_ROOT      scratch directory whose media/ is the media
#                             store (default /backup)
#   CADUCEUS_KEYS_DIR         the keys files to back up (default /keys)
#   CADUCEUS_KEYS_SECRET      the keys Secret's name, for keys-secret.yaml
#   CADUCEUS_NAMESPACE        its namespace
#   CADUCEUS_KEEP_DAILY, CADUCEUS_KEEP_WEEKLY, CADUCEUS_KEEP_MONTHLY
#                             retention of scheduled snapshots (default 7/4/12)
#   CADUCEUS_REPOSITORY_INIT  allow: create the repository when there is none;
#                             never (default): fail instead
#   CADUCEUS_RESULT_FILE      where the result line also goes (default
#                             /dev/termination-log when it is writable, so the
#                             operator reads it from the pod's status)
#
# The last line on stdout is one JSON object, the result:
#   {"result":"success","snapshot":"1a2b3c4d","time":"...","reason":"scheduled",...}
#   {"result":"failure","message":"..."}
# Exit status: 0 success, 1 failure, 2 bad configuration.
set -eu
umask 077

STAGE="${CADUCEUS_STAGE:-}"
REASON="${CADUCEUS_REASON:-scheduled}"
HOST_NAME="${CADUCEUS_HOST:-caduceus-${STAGE}}"
ROOT="${CADUCEUS_BACKUP_ROOT:-/backup}"
KEYS_DIR="${CADUCEUS_KEYS_DIR:-/keys}"
KEEP_DAILY="${CADUCEUS_KEEP_DAILY:-7}"
KEEP_WEEKLY="${CADUCEUS_KEEP_WEEKLY:-4}"
KEEP_MONTHLY="${CADUCEUS_KEEP_MONTHLY:-12}"
INIT="${CADUCEUS_REPOSITORY_INIT:-never}"
SCRIPT=backup

failure_line() {
  printf '{"result":"failure","stage":"%s","reason":"%s","message":"%s"}' \
    "$(json_escape "$STAGE")" "$(json_escape "$REASON")" "$(json_escape "$2")"
}

cleanup() {
  rm -rf "$ROOT/database" "$ROOT/keys" "$ROOT/kubernetes" 2>/dev/null || true
}

# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

[ -n "$STAGE" ] || fail 2 "CADUCEUS_STAGE is not set; it names the stage being backed up"
case "$REASON" in
  scheduled | pre-upgrade:*) ;;
  *) fail 2 "CADUCEUS_REASON is '$REASON'; it must be 'scheduled' or 'pre-upgrade:<release>'" ;;
esac
[ -n "${RESTIC_REPOSITORY:-}" ] || fail 2 "RESTIC_REPOSITORY is not set; it names the restic repository (spec.backups.repository)"
[ -n "${RESTIC_PASSWORD:-}${RESTIC_PASSWORD_FILE:-}" ] ||
  fail 2 "no repository password: set RESTIC_PASSWORD (the operator reads it from the Secret in spec.backups.passwordSecretRef, key 'password')"
[ -d "$ROOT/media" ] || fail 2 "the media store $ROOT/media does not exist; CADUCEUS_BACKUP_ROOT must contain the media store as media/"
[ -d "$KEYS_DIR" ] || fail 2 "the keys directory $KEYS_DIR does not exist; it holds the stage's keys Secret"
case "$(cd "$KEYS_DIR" && pwd -P)" in
  "$(cd "$ROOT" && pwd -P)/keys") fail 2 "CADUCEUS_KEYS_DIR must not be $ROOT/keys: that is the script's scratch copy" ;;
esac
for keep in "$KEEP_DAILY" "$KEEP_WEEKLY" "$KEEP_MONTHLY"; do
  case "$keep" in
    '' | *[!0-9]*) fail 2 "retention counts must be whole numbers (spec.backups.keep), got '$keep'" ;;
  esac
done

temp_file errors

# Opens the repository; a missing one is created only when allowed.
if ! restic cat config >/dev/null 2>"$errors"; then
  if grep -qi 'wrong password' "$errors"; then
    fail 1 "wrong repository password for $(where): the password in spec.backups.passwordSecretRef does not open this repository; put back the password the repository was created with (the existing snapshots are untouched)"
  elif grep -qiE 'Is there a repository at the following location|no such file or directory|does not exist|NoSuchBucket|NoSuchKey|config: not found' "$errors"; then
    if [ "$INIT" = allow ]; then
      restic init >/dev/null 2>"$errors" ||
        fail 1 "creating the restic repository at $(where) failed: $(tail -n 3 "$errors")"
      echo "created the restic repository at $(where)" >&2
    else
      fail 1 "there is no restic repository at $(where): check spec.backups.repository (volume claim mounted, S3 bucket and prefix); existing snapshots elsewhere are untouched"
    fi
  else
    fail 1 "cannot open the restic repository at $(where): $(tail -n 3 "$errors")"
  fi
fi

cleanup
mkdir -p "$ROOT/database" "$ROOT/keys" "$ROOT/kubernetes"

# The database. The data of e2e_one_time_keys_json is left out, as Synapse's
# backup guide advises: restoring used one-time keys breaks encryption.
started="$(date -u +%s)"
if ! pg_dump --format=custom --no-password --exclude-table-data=e2e_one_time_keys_json \
  --file="$ROOT/database/synapse.dump" 2>"$errors"; then
  if grep -qiE 'could not connect|connection refused|could not translate host name|timeout expired|server closed the connection|no route to host|Connection timed out|is the server running' "$errors"; then
    fail 1 "the database is unreachable at ${PGHOST:-<PGHOST unset>}:${PGPORT:-5432}: $(tail -n 2 "$errors"); check that the stage's database is running (spec.database); no snapshot was written and existing snapshots are untouched"
  elif grep -qiE 'password authentication failed|no password supplied' "$errors"; then
    fail 1 "the database refused the login of user ${PGUSER:-?}: $(tail -n 2 "$errors"); check the database password Secret"
  elif grep -qiE 'no space left on device|could not write' "$errors"; then
    fail 1 "no space left for the database dump in $ROOT: $(tail -n 2 "$errors")"
  else
    fail 1 "pg_dump failed: $(tail -n 3 "$errors")"
  fi
fi

# The keys, dereferencing the Secret volume's symlinks and skipping its
# ..data bookkeeping entries.
key_count=0
for file in "$KEYS_DIR"/*; do
  [ -f "$file" ] || continue
  cp "$file" "$ROOT/keys/$(basename "$file")"
  key_count=$((key_count + 1))
done
[ "$key_count" -gt 0 ] || fail 1 "the keys directory $KEYS_DIR holds no files; the stage's keys Secret is missing"

# The keys Secret as a manifest: in a new cluster it is applied before a
# restore, so the restored homeserver keeps its identity.
if [ -n "${CADUCEUS_KEYS_SECRET:-}" ]; then
  {
    echo "apiVersion: v1"
    echo "kind: Secret"
    echo "metadata:"
    echo "  name: $CADUCEUS_KEYS_SECRET"
    [ -n "${CADUCEUS_NAMESPACE:-}" ] && echo "  namespace: $CADUCEUS_NAMESPACE"
    echo "immutable: true"
    echo "type: Opaque"
    echo "data:"
    for file in "$ROOT/keys"/*; do
      echo "  $(basename "$file"): $(base64 <"$file" | tr -d '\n')"
    done
  } >"$ROOT/kubernetes/keys-secret.yaml"
fi

# Relative paths from the root give every snapshot the same layout, wherever
# the root is.
temp_file output
backup_status=0
(cd "$ROOT" && restic backup --json --host "$HOST_NAME" --tag "stage:$STAGE" --tag "$REASON" \
  database keys kubernetes media) >"$output" 2>"$errors" || backup_status=$?
summary="$(grep '"message_type":"summary"' "$output" || true)"
snapshot="$(printf '%s' "$summary" | sed -n 's/.*"snapshot_id":"\([0-9a-f]*\)".*/\1/p')"
if [ -z "$snapshot" ]; then
  if grep -qiE 'no space left on device|disk quota exceeded|file too large' "$errors"; then
    fail 1 "the backup repository at $(where) is full (no space left on device): no snapshot was written and existing snapshots are untouched; enlarge spec.backups.repository.pvc.size or lower spec.backups.keep"
  elif grep -qi 'wrong password' "$errors"; then
    fail 1 "wrong repository password for $(where)"
  else
    fail 1 "restic backup to $(where) failed: $(tail -n 3 "$errors"); existing snapshots are untouched"
  fi
fi
added="$(printf '%s' "$summary" | sed -n 's/.*"data_added":\([0-9]*\).*/\1/p')"
cleanup

# Retention applies to scheduled snapshots only; pre-upgrade snapshots are
# the way back from a release and stay until removed by hand.
warning=""
# Exit status 3: the snapshot was written but some files could not be read.
if [ "$backup_status" -ne 0 ]; then
  warning="some files could not be read and are missing from snapshot $snapshot: $(tail -n 2 "$errors")"
  echo "warning: $warning" >&2
fi
if [ "$REASON" = scheduled ] && [ "$((KEEP_DAILY + KEEP_WEEKLY + KEEP_MONTHLY))" -gt 0 ]; then
  if ! restic forget --prune --host "$HOST_NAME" --tag scheduled --group-by host \
    --keep-daily "$KEEP_DAILY" --keep-weekly "$KEEP_WEEKLY" --keep-monthly "$KEEP_MONTHLY" \
    >/dev/null 2>"$errors"; then
    # The new snapshot is stored; only the clean-up failed, so the backup
    # counts and the next run prunes again.
    warning="${warning:+$warning; }restic forget --prune failed: $(tail -n 2 "$errors")"
    echo "warning: $warning" >&2
  fi
fi

finished="$(date -u +%s)"
result "{\"result\":\"success\",\"snapshot\":\"$snapshot\",\"time\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\",\"stage\":\"$(json_escape "$STAGE")\",\"reason\":\"$(json_escape "$REASON")\",\"seconds\":$((finished - started)),\"bytesAdded\":${added:-0}$([ -n "$warning" ] && printf ',"warning":"%s"' "$(json_escape "$warning")")}"
