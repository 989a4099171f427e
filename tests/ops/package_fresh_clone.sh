#!/usr/bin/env bash
# The README's install step, as a new user runs it: a fresh clone of this checkout's HEAD, then
# `scripts/package.sh` there (default Release build, -Werror), must make the .deb. The package is
# unpacked into a scratch root with `dpkg -x`; the binary must run from it and the containerd
# snippets for every supported release must be in it, each equal to what the packaged binary's
# `snapimport config containerd --version V` prints.
#
#   SNAPIMPORT_SOURCE_DIR=. tests/ops/package_fresh_clone.sh
set -euo pipefail
SRC=${SNAPIMPORT_SOURCE_DIR:?SNAPIMPORT_SOURCE_DIR is not set}
for tool in git cmake cpack dpkg; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }
done
git -C "$SRC" rev-parse HEAD >/dev/null 2>&1 || { echo "SKIP: $SRC is not a git checkout"; exit 77; }
work=$(mktemp -d /tmp/snapimport-package.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

if [ -n "$(git -C "$SRC" status --porcelain --untracked-files=no)" ]; then
  echo "note: $SRC has uncommitted changes; the clone builds HEAD ($(git -C "$SRC" rev-parse --short HEAD))"
fi
git clone --quiet "$SRC" "$work/src"
echo "building the .deb in a fresh clone at $(git -C "$work/src" rev-parse --short HEAD) (Release, as the README says)"
start=$SECONDS
# No compiler cache or build type from the caller's environment: exactly the README's command.
if ! (cd "$work/src" && env -u CMAKE_BUILD_TYPE -u BUILD_DIR -u CMAKE_CXX_COMPILER_LAUNCHER \
  -u CMAKE_C_COMPILER_LAUNCHER scripts/package.sh) >"$work/package.log" 2>&1; then
  grep -E 'error|Error' "$work/package.log" | head -n 30 >&2 || true
  tail -n 30 "$work/package.log" >&2
  fail "scripts/package.sh failed in a fresh clone"
fi
deb=$(tail -n 1 "$work/package.log")
case "$deb" in /*) ;; *) deb=$work/src/$deb ;; esac # package.sh prints it relative to the checkout
[ -f "$deb" ] || fail "scripts/package.sh did not print the path of a .deb (last line: '$deb')"
case "$deb" in "$work/src/build-release/snapimport_"*.deb) ;; *) fail "unexpected package path $deb" ;; esac
echo "ok: $(basename "$deb") built in $((SECONDS - start)) s"

root=$work/root
dpkg -x "$deb" "$root"
bin=$root/usr/bin/snapimport
"$bin" --version >/dev/null || fail "the packaged binary does not run"
echo "ok: $("$bin" --version | head -n 1)"
for v in 1.6 1.7 2.x; do
  f=$root/usr/share/snapimport/containerd/config-$v.toml
  [ -f "$f" ] || fail "the package lacks $f"
  "$bin" config containerd --version "$v" | diff -u "$f" - >&2 ||
    fail "config-$v.toml differs from the packaged binary's 'config containerd --version $v'"
done
echo "PASS: a fresh clone packages with scripts/package.sh; the .deb's binary runs and ships the 1.6, 1.7 and 2.x snippets"
