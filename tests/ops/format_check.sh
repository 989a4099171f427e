#!/usr/bin/env bash
# Every tracked C++ file is as clang-format (.clang-format at the top) would write it. Runs on the
# source tree, not the build; lists the files that differ and how to fix them.
set -euo pipefail
SRC=${SNAPIMPORT_SOURCE_DIR:?}
if ! command -v clang-format >/dev/null; then
  echo "SKIP: clang-format is not installed (scripts/setup.sh installs it)"
  exit 77
fi
cd "$SRC"
git() { command git -c safe.directory="$SRC" "$@"; }
if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  echo "SKIP: $SRC is not a git work tree, so the tracked files are unknown"
  exit 77
fi
mapfile -t files < <(git ls-files '*.cpp' '*.h' '*.cc' '*.hpp')
bad=()
for f in "${files[@]}"; do
  [ -f "$f" ] || continue
  clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ "${#bad[@]}" -gt 0 ]; then
  echo "FAIL: ${#bad[@]} of ${#files[@]} C++ files differ from clang-format ($(clang-format --version)):" >&2
  printf '  %s\n' "${bad[@]}" >&2
  echo "fix: clang-format -i ${bad[*]}" >&2
  exit 1
fi
echo "ok: ${#files[@]} C++ files match clang-format"
