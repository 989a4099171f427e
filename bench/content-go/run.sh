#!/usr/bin/env bash
# Builds bench/content-go with Debian's golang-go in GOPATH mode against Debian's containerd
# 1.6.20 sources (as tests/run_go_test.sh builds the Go tests), starts `snapimport serve` on a
# fresh root under $TMPDIR, runs the benchmark against its socket and stops the daemon.
#
#   bench/content-go/run.sh [-size-mib N] [-read-kib N] [-keep]
#
# Environment: SNAPIMPORT_BIN (default build/cli/snapimport), CONTENT_GO_WORK (GOPATH copy, Go
# build cache and binary; default $TMPDIR/content-go-work), KEEP=1 keeps the daemon's root and log.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin=${SNAPIMPORT_BIN:-$repo/build/cli/snapimport}
work=${CONTENT_GO_WORK:-${TMPDIR:-/tmp}/content-go-work}

fail() { echo "content-go/run.sh: $*" >&2; exit 1; }
command -v go >/dev/null || fail "go not found; run scripts/setup.sh (Debian golang-go)"
[ -x "$bin" ] || fail "SNAPIMPORT_BIN=$bin is not an executable; build the snapimport target first"
[ -d /usr/share/gocode/src/github.com/containerd/containerd/content/proxy ] ||
  fail "containerd's Go sources are missing; install golang-github-containerd-containerd-dev"

# A private GOPATH holding a fresh copy of this directory, so edits are always picked up.
gopath=$work/gopath
dest=$gopath/src/snapimport/bench/content-go
rm -rf "$gopath"
mkdir -p "$dest"
cp "$here"/*.go "$dest/"
export GO111MODULE=off GOPATH=$gopath:/usr/share/gocode GOCACHE=$work/gocache GOFLAGS= \
  GOPROXY=off CGO_ENABLED=1
(cd "$dest" && go build -o "$work/content-go" .) || fail "go build of $dest failed"

dir=$(mktemp -d "${TMPDIR:-/tmp}/content-go-XXXXXX")
sock=$dir/snapimport.sock
pid=
cleanup() {
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  if [ "${KEEP:-0}" = 1 ]; then echo "content-go/run.sh: kept $dir" >&2; else rm -rf "$dir"; fi
}
trap cleanup EXIT

"$bin" serve --root "$dir/root" --address "$sock" 2>"$dir/daemon.log" &
pid=$!
for _ in $(seq 300); do
  [ -S "$sock" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$dir/daemon.log" >&2; fail "daemon exited at start-up"; }
  sleep 0.05
done
[ -S "$sock" ] || fail "daemon did not listen on $sock within 15 s; see $dir/daemon.log"

echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
"$work/content-go" -address "$sock" -daemon-pid "$pid" "$@"
