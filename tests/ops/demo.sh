#!/usr/bin/env bash
# The README's demo command, end to end, with the binary under test: scripts/demo.sh with
# SKIP_SETUP=1 SKIP_BUILD=1. It must finish, the container must greet us with the layers applied
# as expected, status and metrics must show the three imported layers, the timings must be
# printed, and nothing it started may be left behind.
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "SKIP: the demo needs root (containerd, mounts, runc)"; exit 77; }
BIN=${SNAPIMPORT_BIN:?SNAPIMPORT_BIN is not set}
SRC=${SNAPIMPORT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
out=$(mktemp /tmp/snapimport-ops-demo.XXXXXX.log)
trap 'rm -f "$out"' EXIT
fail() {
  echo "FAIL: $*" >&2
  tail -n 60 "$out" >&2
  exit 1
}

rc=0
SKIP_SETUP=1 SKIP_BUILD=1 SNAPIMPORT_BIN=$BIN SI_WORK_PARENT=/tmp "$SRC/scripts/demo.sh" >"$out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || fail "scripts/demo.sh exited $rc"
cat "$out" >&2

expect() { grep -qE -- "$1" "$out" || fail "the demo output lacks /$1/"; }
expect 'Hello from a container whose root filesystem is served by snapimport!'
expect 'top layer says: +'
expect '/etc/deleted-by-layer3.txt is gone \(whiteout in layer 3\)'
expect '^IMAGE 127\.0\.0\.1:[0-9]+/snapimport/demo:v1 '
expect 'finished in .*, 3/3 layers done'
expect '^  snapimport_imports_completed_total\{source="registry"\} 3$'
expect '^  snapimport_snapshots\{kind="committed"\} 3$'
expect '^ +[0-9.]+ push the sample image to .* \(snapimport copy\)'
expect '^ +[0-9.]+ snapimport pull '
expect '^ +[0-9.]+ total$'
work=$(sed -n 's/.*work dir: \(\/[^ ]*\).*/\1/p' "$out" | head -n1)
[ -n "$work" ] || fail "the demo did not print its work dir"
[ ! -e "$work" ] || fail "the demo left its work dir $work behind"
if pgrep -f -- "$work" >/dev/null; then fail "processes of the demo are still running: $(pgrep -af -- "$work")"; fi
echo "PASS: the README demo ran end to end and cleaned up after itself"
