# shellcheck shell=bash
# Long-running processes of hack/control-plane.sh and hack/node.sh: started
# detached with a pid file in the state directory $DIR, and stopped only if
# they are still ours. Sourced; the caller defines DIR and die().

# A process is ours only if its command line names the state directory: a
# stale pid file must not make us signal an unrelated process that reused
# the pid.
pid_of() { # name
  local file="$DIR/$1.pid" pid
  [[ -f "$file" ]] || return 1
  pid="$(<"$file")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  [[ "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" == *"$DIR/"* ]] || return 1
  echo "$pid"
}

alive() { pid_of "$1" >/dev/null; }

# Starts a detached process that outlives the calling script; the process
# writes its own pid before exec, which stays right even if setsid has to
# fork (and through `nsenter`, which execs too).
launch() { # name command...
  local name="$1"
  shift
  setsid nohup bash -c 'echo $$ >"$0"; exec "$@"' "$DIR/$name.pid" "$@" \
    >"$DIR/$name.log" 2>&1 </dev/null &
  for _ in $(seq 50); do
    [[ -s "$DIR/$name.pid" ]] && return
    sleep 0.1
  done
  die "$name did not start (log: $DIR/$name.log)"
}

# SIGTERM, then SIGKILL after 15 s; waits until the process is gone.
stop_process() { # name
  local pid
  if pid="$(pid_of "$1")"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 150); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "$1 (pid $pid) ignored SIGTERM for 15 s; killing it" >&2
      kill -9 "$pid" 2>/dev/null || true
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    echo "stopped $1 (pid $pid)" >&2
  fi
  rm -f "$DIR/$1.pid"
}
