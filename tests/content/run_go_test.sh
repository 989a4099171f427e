#!/usr/bin/env bash
# Builds the content test package (tests/content/go/contentsuite) with Debian's golang-go in
# GOPATH mode and runs the tests selected by -test.run against $SNAPIMPORT_BIN, as root.
#
#   run_go_test.sh SRC_DIR WORK_DIR NAME [test binary flags...]
#
# SRC_DIR is tests/content/go in the source tree. WORK_DIR is in the build tree and receives a
# private GOPATH copy, the Go build cache and the test binary (one per NAME, so ctest can run
# several at once). Nothing is written to the source tree.
set -euo pipefail

src=$1 work=$2 name=$3
shift 3

fail() { echo "run_go_test.sh: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "must run as root (the daemon runs as root, as containerd's plugins do)"
command -v go >/dev/null || fail "go not found; run scripts/setup.sh (Debian golang-go)"
[ -n "${SNAPIMPORT_BIN:-}" ] || fail "SNAPIMPORT_BIN is not set"
[ -x "$SNAPIMPORT_BIN" ] || fail "SNAPIMPORT_BIN=$SNAPIMPORT_BIN is not an executable; build the snapimport target first"

gopath=$work/gopath-$name
dest=$gopath/src/snapimport/tests/content
rm -rf "$gopath"
mkdir -p "$dest"
cp -r "$src/contentsuite" "$dest/"

export GO111MODULE=off
export GOPATH=$gopath:/usr/share/gocode
export GOCACHE=$work/gocache
export GOFLAGS=
export GOPROXY=off

mkdir -p "$work/bin"
bin=$work/bin/$name.test
echo "run_go_test.sh: building contentsuite for $name" >&2
(cd "$dest/contentsuite" && go test -c -o "$bin" .)

mkdir -p "$work/run-$name"
cd "$work/run-$name"
exec "$bin" -test.root -test.v "$@"
