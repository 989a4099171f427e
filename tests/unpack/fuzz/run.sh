#!/usr/bin/env bash
# Builds the libFuzzer target with clang (ASan + UBSan) and runs it for a fixed time, seeded with
# the malicious-layer corpus.
#   tests/unpack/fuzz/run.sh [SECONDS] [BUILD_DIR]     (default 60 s, /tmp/snapimport-fuzz-build)
# Exit 0 when the run ends without a crash; 77 when clang or root is missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../../.." && pwd)
secs=${1:-60}
build=${2:-/tmp/snapimport-fuzz-build}
cxx=${FUZZ_CXX:-clang++-14}
command -v "$cxx" >/dev/null || cxx=clang++
command -v "$cxx" >/dev/null || { echo "fuzz: clang++ missing, skipping" >&2; exit 77; }
if [ "$(id -u)" -ne 0 ]; then echo "fuzz: needs root (mknod, trusted.* xattrs), skipping" >&2; exit 77; fi
mkdir -p "$build/obj"
flags=(-std=c++20 -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -I"$top")
objs=()
for src in "$top"/unpack/*.cpp "$top"/common/Log.cpp; do
  obj=$build/obj/$(basename "$src" .cpp).o
  if [ ! -e "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find "$top/unpack" -name '*.h' -newer "$obj")" ]; then
    "$cxx" "${flags[@]}" -c "$src" -o "$obj"
  fi
  objs+=("$obj")
done
"$cxx" "${flags[@]}" -fsanitize=fuzzer "$here/unpack_fuzzer.cpp" "${objs[@]}" \
  -larchive -lisal -lzstd -lcrypto -o "$build/unpack_fuzzer"
seeds=$build/seeds
if [ ! -d "$seeds" ]; then
  mkdir -p "$seeds.raw" "$seeds"
  python3 "$here/../corpus.py" generate "$seeds.raw" --outside /tmp/snapimport-fuzz-outside
  # First byte selects the compression (0 tar, 1 gzip, 2 zstd), as in the target.
  for f in "$seeds.raw"/*; do
    case $f in *.gzip) p='\001' ;; *.zstd) p='\002' ;; *) p='\000' ;; esac
    { printf "$p"; cat "$f"; } >"$seeds/$(basename "$f")"
  done
  rm -rf "$seeds.raw"
fi
mkdir -p "$build/corpus"
cd "$build"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ./unpack_fuzzer -max_total_time="$secs" -max_len=4194304 -rss_limit_mb=2048 -timeout=30 \
  -print_final_stats=1 corpus "$seeds"
