#!/usr/bin/env bash
# Builds one Go test package of tests/conformance with Debian's golang-go in GOPATH mode
# and runs it as root against the snapimport daemon named by $SNAPIMPORT_BIN.
#
#   run_go_test.sh SRC_DIR WORK_DIR PACKAGE [test binary flags...]
#
# SRC_DIR is tests/conformance in the source tree; WORK_DIR is in the build tree and
# receives the GOPATH copy, the Go build cache, the test binary and the daemon logs.
# Nothing is written to the source tree.
set -euo pipefail

src=$1 work=$2 pkg=$3
shift 3

fail() { echo "run_go_test.sh: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "must run as root (the tests mount overlays and run the daemon as root)"
command -v go >/dev/null || fail "go not found; run scripts/setup.sh (Debian golang-go)"
[ -n "${SNAPIMPORT_BIN:-}" ] || fail "SNAPIMPORT_BIN is not set"
[ -x "$SNAPIMPORT_BIN" ] || fail "SNAPIMPORT_BIN=$SNAPIMPORT_BIN is not an executable; build the snapimport target first"

# A private GOPATH per package: ctest may run the packages in parallel, and each copies
# the sources fresh so edits in the source tree are always picked up.
gopath=$work/gopath-$pkg
dest=$gopath/src/snapimport/tests/conformance
rm -rf "$gopath"
mkdir -p "$dest"
cp -r "$src/harness" "$src/$pkg" "$dest/"

export GO111MODULE=off
export GOPATH=$gopath:/usr/share/gocode
export GOCACHE=$work/gocache   # shared between packages; Go's cache is safe for that
export GOFLAGS=
export GOPROXY=off
export CGO_ENABLED=1

mkdir -p "$work/bin"
bin=$work/bin/$pkg.test
echo "run_go_test.sh: building $pkg" >&2
(cd "$dest/$pkg" && go test -c -o "$bin" .)

# Daemon logs go next to the binary so they survive the tests' temp directories.
export SNAPIMPORT_LOG_DIR=$work/logs/$pkg
rm -rf "$SNAPIMPORT_LOG_DIR"
mkdir -p "$SNAPIMPORT_LOG_DIR"
echo "run_go_test.sh: running $pkg against $SNAPIMPORT_BIN (daemon logs in $SNAPIMPORT_LOG_DIR)" >&2
cd "$work"
exec "$bin" -test.root -test.v "$@"
