#!/usr/bin/env bash
# Builds the libFuzzer target with clang (ASan + UBSan) and runs it for a fixed time, seeded with
# the malicious-layer corpus.
#   tests/unpack/fuzz/run.sh [SECONDS] [BUILD_DIR]     (default 60 s, /tmp/snapimport-fuzz-build)
# FUZZ_SANITIZER=thread builds the same target under ThreadSanitizer instead and replays the seeds
# (and any corpus a fuzz run left in BUILD_DIR) once each, without libFuzzer, which TSan cannot be
# combined with; any data race in the unpack pipeline's threads fails the run.
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
sanitizer=${FUZZ_SANITIZER:-address}
case $sanitizer in
  address)
    flags=(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined)
    objdir=$build/obj ;;
  thread)
    flags=(-fsanitize=thread)
    objdir=$build/obj-tsan ;;
  *) echo "fuzz: FUZZ_SANITIZER must be address or thread" >&2; exit 2 ;;
esac
flags+=(-std=c++20 -O1 -g -I"$top")
mkdir -p "$objdir"
objs=()
for src in "$top"/unpack/*.cpp "$top"/common/Log.cpp; do
  obj=$objdir/$(basename "$src" .cpp).o
  if [ ! -e "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find "$top/unpack" -name '*.h' -newer "$obj")" ]; then
    "$cxx" "${flags[@]}" -c "$src" -o "$obj"
  fi
  objs+=("$obj")
done
libs=(-larchive -lisal -lzstd -lcrypto)
if [ "$sanitizer" = address ]; then
  "$cxx" "${flags[@]}" -fsanitize=fuzzer "$here/unpack_fuzzer.cpp" "${objs[@]}" "${libs[@]}" \
    -o "$build/unpack_fuzzer"
else
  "$cxx" "${flags[@]}" "$here/unpack_fuzzer.cpp" "$here/replay_main.cpp" "${objs[@]}" "${libs[@]}" \
    -o "$build/unpack_replay_tsan"
fi
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
if [ "$sanitizer" = thread ]; then
  TSAN_OPTIONS="halt_on_error=1 exitcode=66" ./unpack_replay_tsan "$seeds" corpus
  exit
fi
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ./unpack_fuzzer -max_total_time="$secs" -max_len=4194304 -rss_limit_mb=2048 -timeout=30 \
  -print_final_stats=1 corpus "$seeds"
