#!/usr/bin/env bash
# Builds one Go test package with Debian's golang-go in GOPATH mode and runs it as root against
# the snapimport daemon named by $SNAPIMPORT_BIN (tests/conformance and tests/content use it).
#
#   run_go_test.sh SRC_DIR IMPORT_PATH WORK_DIR NAME PACKAGE [test binary flags...]
#
# SRC_DIR (in the source tree) is copied to $GOPATH/src/IMPORT_PATH, and IMPORT_PATH/PACKAGE is
# built into WORK_DIR/bin/NAME.test. WORK_DIR is in the build tree and receives the GOPATH copy,
# the Go build cache, the test binary, the daemon logs (logs/NAME) and the run directory
# (run-NAME). Nothing is written to the source tree.
set -euo pipefail

src=$1 importpath=$2 work=$3 name=$4 pkg=$5
shift 5

fail() { echo "run_go_test.sh: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "must run as root (the tests mount overlays and run the daemon as root)"
command -v go >/dev/null || fail "go not found; run scripts/setup.sh (Debian golang-go)"
[ -n "${SNAPIMPORT_BIN:-}" ] || fail "SNAPIMPORT_BIN is not set"
[ -x "$SNAPIMPORT_BIN" ] || fail "SNAPIMPORT_BIN=$SNAPIMPORT_BIN is not an executable; build the snapimport target first"

# A private GOPATH per test: ctest may run them in parallel, and each copies the sources fresh so
# edits in the source tree are always picked up.
gopath=$work/gopath-$name
dest=$gopath/src/$importpath
rm -rf "$gopath"
mkdir -p "$(dirname "$dest")"
cp -r "$src" "$dest"

export GO111MODULE=off
export GOPATH=$gopath:/usr/share/gocode
export GOCACHE=$work/gocache   # shared between tests; Go's cache is safe for that
export GOFLAGS=
export GOPROXY=off
export CGO_ENABLED=1

mkdir -p "$work/bin"
bin=$work/bin/$name.test
echo "run_go_test.sh: building $importpath/$pkg for $name" >&2
(cd "$dest/$pkg" && go test -c -o "$bin" .)

# Daemon logs go next to the binary so they survive the tests' temp directories.
export SNAPIMPORT_LOG_DIR=$work/logs/$name
rm -rf "$SNAPIMPORT_LOG_DIR"
mkdir -p "$SNAPIMPORT_LOG_DIR" "$work/run-$name"
echo "run_go_test.sh: running $name against $SNAPIMPORT_BIN (daemon logs in $SNAPIMPORT_LOG_DIR)" >&2
cd "$work/run-$name"
exec "$bin" -test.root -test.v "$@"
