#!/usr/bin/env bash
# Shows that every rule of the operator's roles (src/rbac.rs) is needed: for
# each rule, the shipped role minus that rule is put on a control plane and
# the control-plane test suite runs; the tests that fail are recorded, and the
# role is restored. A rule no test misses is either unused (remove it from
# src/rbac.rs) or untested (write the test).
#
# Slow (one suite run per rule), so not part of hack/test.sh. It uses a
# control plane of its own, never the one other runs share, because it
# changes the operator's roles there:
#
#   CADUCEUS_CP_DIR   its state directory (default /tmp/caduceus-cp-ablation)
#   ABLATION_FILTER   only rules whose "group resources" line matches this
#                     extended regex (default: every rule)
#
# Prints a Markdown table (rule -> failing tests) and writes it to
# $CADUCEUS_CP_DIR/../rbac-ablation.md (the last runs' output goes to
# rbac-ablation-logs/ beside it).
set -euo pipefail
# A failure inside $(...) stops the script too.
shopt -s inherit_errexit

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CADUCEUS_CP_DIR="${CADUCEUS_CP_DIR:-/tmp/caduceus-cp-ablation}"
[[ "$CADUCEUS_CP_DIR" != /tmp/caduceus-control-plane ]] ||
  { echo "hack/rbac-ablation.sh: refusing to change the roles of the shared control plane; set CADUCEUS_CP_DIR" >&2; exit 1; }
export CADUCEUS_CACHE="${CADUCEUS_CACHE:-$HOME/.cache/caduceus}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CADUCEUS_CACHE/cargo-target}"
FILTER="${ABLATION_FILTER:-.}"
REPORT="$(dirname "$CADUCEUS_CP_DIR")/rbac-ablation.md"
LOGS="$(dirname "$CADUCEUS_CP_DIR")/rbac-ablation-logs"
WORK="$(mktemp -d)"

# Every test target that talks to the control plane. The kustomize test
# re-applies the shipped roles, which would undo the ablation.
TARGETS=()
for file in tests/*.rs; do
  TARGETS+=(--test "$(basename "$file" .rs)")
done
SKIP=(--skip kustomize_default_overlay_is_accepted_server_side)

started_here=""
cleanup() {
  restore 2>/dev/null || true
  if [[ -n "$started_here" ]]; then hack/control-plane.sh stop || true; fi
  # The last runs' output, to see why a test failed.
  rm -rf "$LOGS" && mkdir -p "$LOGS" && cp "$WORK"/*.log* "$LOGS/" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

if ! hack/control-plane.sh env >/dev/null 2>&1; then
  started_here=1
fi
hack/control-plane.sh start >/dev/null
# shellcheck disable=SC1091
source "$CADUCEUS_CP_DIR/env"
CADUCEUS_HELM="$(hack/helm.sh | tail -n1)"
export CADUCEUS_HELM

admin() { kubectl --kubeconfig "$CADUCEUS_ADMIN_KUBECONFIG" --request-timeout=30s "$@"; }

# The shipped roles, as the API server holds them after applying config/rbac.
admin apply --server-side --force-conflicts -k config/rbac >/dev/null
admin get clusterrole caduceus-operator -o json >"$WORK/clusterrole.json"
admin -n caduceus-system get role caduceus-leader-election -o json >"$WORK/role.json"

# Writes the object in $1 without rule $2 (or with every rule for -1).
put_role() { # file index
  python3 - "$1" "$2" <<'PY' | admin replace -f - >/dev/null
import json, sys
obj = json.load(open(sys.argv[1]))
index = int(sys.argv[2])
for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
    obj["metadata"].pop(key, None)
if index >= 0:
    del obj["rules"][index]
json.dump(obj, sys.stdout)
PY
}

restore() {
  put_role "$WORK/clusterrole.json" -1
  put_role "$WORK/role.json" -1
}

describe() { # file index
  python3 - "$1" "$2" <<'PY'
import json, sys
rule = json.load(open(sys.argv[1]))["rules"][int(sys.argv[2])]
group = rule.get("apiGroups", [""])[0] or "core"
print(f"{group} {','.join(rule['resources'])} [{','.join(rule['verbs'])}]")
PY
}

# Runs every test binary (all of them, even after one fails); prints the
# names of the failed tests, one a line. With names, runs only those.
run_suite() { # log [test names...]
  local log="$1" exe
  shift
  : >"$log"
  for exe in "$WORK"/bin/*; do
    if (($#)); then
      "$exe" --exact "$@" --test-threads=4 >>"$log" 2>&1 || true
    else
      "$exe" "${SKIP[@]}" --test-threads=4 >>"$log" 2>&1 || true
    fi
    # A binary that did not run must not look like "nothing failed".
    tail -n 5 "$log" | grep -q '^test result: ' ||
      { echo "hack/rbac-ablation.sh: $exe did not run its tests; see $REPORT.log" >&2; cp "$log" "$REPORT.log"; exit 1; }
  done
  sed -n 's/^test \(.*\) \.\.\. FAILED$/\1/p' "$log" | sort -u
}

# Runs the suite; prints the names of the tests that failed twice, one a
# line. A missing permission fails a test every time; a test that passes on
# its second run failed for another reason (load on a 2-core machine) and
# is left out, with a note.
failing_tests() { # log
  local first second flaky
  first="$(run_suite "$1")"
  [[ -n "$first" ]] || return 0
  # shellcheck disable=SC2086 # one test name a word
  second="$(run_suite "$1.again" $first)"
  flaky="$(comm -23 <(echo "$first") <(echo "$second"))"
  [[ -z "$flaky" ]] || echo "  (failed once, passed again: $(echo $flaky))" >&2
  echo "$second"
}

echo "building the tests" >&2
# Copies of the test binaries: other builds sharing the target directory
# cannot swap them during the hour this takes.
mkdir -p "$WORK/bin"
cargo test --locked "${TARGETS[@]}" --no-run --message-format=json >"$WORK/build.json" 2>"$WORK/build.log" ||
  { cat "$WORK/build.log" >&2; echo "hack/rbac-ablation.sh: the tests do not build" >&2; exit 1; }
python3 -c '
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if message.get("reason") == "compiler-artifact" and message.get("executable") and message["target"]["kind"] == ["test"]:
        print(message["executable"])
' <"$WORK/build.json" | while read -r exe; do cp "$exe" "$WORK/bin/"; done
(($(ls "$WORK/bin" | wc -l) == ${#TARGETS[@]} / 2)) ||
  { echo "hack/rbac-ablation.sh: expected one test binary per tests/*.rs in $WORK/bin" >&2; exit 1; }

echo "baseline: the shipped roles" >&2
restore
baseline="$(failing_tests "$WORK/baseline.log")"
# A test that fails even with the full roles says nothing about any rule:
# it is left out of every run and named in the report.
for name in $baseline; do
  echo "hack/rbac-ablation.sh: $name fails with the full roles too; leaving it out" >&2
  SKIP+=(--skip "$name")
done

{
  echo "| role | rule removed | tests that fail |"
  echo "|---|---|---|"
} >"$REPORT"
uncovered=0
for file in clusterrole role; do
  count="$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["rules"]))' "$WORK/$file.json")"
  for ((i = 0; i < count; i++)); do
    rule="$(describe "$WORK/$file.json" "$i")"
    [[ "$rule" =~ $FILTER ]] || continue
    echo "without $rule" >&2
    put_role "$WORK/$file.json" "$i"
    failed="$(failing_tests "$WORK/run.log")"
    restore
    if [[ -z "$failed" ]]; then
      uncovered=$((uncovered + 1))
      failed="**none**"
    else
      failed="$(echo "$failed" | sed 's/.*/`&`/' | paste -sd ' ' | sed 's/` `/`, `/g')"
    fi
    echo "| $file | $rule | $failed |" >>"$REPORT"
    echo "  -> $failed" >&2
  done
done
[[ -z "$baseline" ]] ||
  echo "Left out, failing with the full roles too: $(echo $baseline)" >>"$REPORT"
cat "$REPORT"
echo "$uncovered rule(s) no test needs (report in $REPORT)" >&2
