# Shared by backup.sh and restore.sh (sourced, not run): the result line,
# failures, temporary files and the clean-up that runs on every exit path —
# success, a reported failure, an unexpected error under `set -e`, or a
# signal (a Job's deadline sends SIGTERM).
#
# The sourcing script sets SCRIPT (its name, for messages) and defines:
#   cleanup               removes its scratch files; must be idempotent
#   failure_line CODE MSG prints its JSON result line for a failure
# and may call `temp_file VAR` to get a temporary file removed at exit.

RESULT_FILE="${CADUCEUS_RESULT_FILE:-}"
if [ -z "$RESULT_FILE" ] && [ -w /dev/termination-log ]; then
  RESULT_FILE=/dev/termination-log
fi
RESULT_WRITTEN=""
TEMP_FILES=""

# JSON string escaping for messages (backslash, quote, control characters).
json_escape() {
  printf '%s' "$1" | tr '\n\t\r' '   ' | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g'
}

# result LINE: the result line on stdout and in the termination message.
result() {
  RESULT_WRITTEN=1
  if [ -n "$RESULT_FILE" ]; then
    printf '%s\n' "$1" >"$RESULT_FILE" 2>/dev/null || true
  fi
  printf '%s\n' "$1"
}

# fail CODE MESSAGE: the message on stderr, the result line, and exit (the
# exit trap cleans up).
fail() {
  code="$1"
  shift
  echo "$SCRIPT failed: $*" >&2
  result "$(failure_line "$code" "$*")"
  exit "$code"
}

# The repository's location without credentials, for messages.
where() {
  printf '%s' "${RESTIC_REPOSITORY:-<RESTIC_REPOSITORY unset>}" | sed 's#//[^/@]*@#//#'
}

# temp_file VAR: a new temporary file in VAR, removed at exit.
temp_file() {
  lib_temp="$(mktemp)"
  TEMP_FILES="$TEMP_FILES $lib_temp"
  eval "$1=\$lib_temp"
}

on_exit() {
  status=$?
  trap - EXIT
  if [ -z "$RESULT_WRITTEN" ]; then
    # Stopped without saying why (an unexpected error or a signal): the
    # operator still gets a result line to show.
    [ "$status" -eq 0 ] && status=1
    echo "$SCRIPT failed: stopped unexpectedly with exit status $status" >&2
    result "$(failure_line 1 "$SCRIPT stopped unexpectedly with exit status $status; see the pod's log")"
  fi
  cleanup
  # shellcheck disable=SC2086 # a list of paths from mktemp
  [ -z "$TEMP_FILES" ] || rm -f $TEMP_FILES
  exit "$status"
}
trap on_exit EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
