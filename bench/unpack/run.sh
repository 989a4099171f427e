#!/usr/bin/env bash
# Extraction throughput of `snapimport unpack` against `igzip -dc | tar -x` and
# `gzip -dc | tar -x` on the same gzip layers, in the same run (issue 5, acceptance 4 and 5).
#
#   SNAPIMPORT_BIN=build/cli/snapimport bench/unpack/run.sh
#
# Layers (built once, cached in $BENCH_WORK):
#   large  a realistic layer: files from this machine's /usr, up to $BENCH_LARGE_MIB MiB of tar
#   small  $BENCH_SMALL_FILES small files (0.5-8 KiB, text-like) in directories of 100
# Both are compressed with `gzip -6`, the level Go's compress/gzip (docker, buildkit) uses.
# Every tool runs $BENCH_ROUNDS times per layer with a `sync` before each run; the best time
# counts. snapimport runs with --no-sync like tar; one extra run shows the cost of its syncfs.
# Peak RSS of snapimport is measured with /usr/bin/time. Needs root (tar -x keeps owners).
set -euo pipefail
bin=${SNAPIMPORT_BIN:?SNAPIMPORT_BIN must point at the snapimport binary}
work=${BENCH_WORK:-/var/tmp/snapimport-unpack-bench}
large_mib=${BENCH_LARGE_MIB:-1024}
small_files=${BENCH_SMALL_FILES:-100000}
rounds=${BENCH_ROUNDS:-3}
layers=${BENCH_LAYERS:-large small}
if [ "$(id -u)" -ne 0 ]; then echo "bench: needs root, skipping" >&2; exit 77; fi
for t in igzip gzip tar python3 /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "bench: $t missing (scripts/setup.sh installs it)" >&2; exit 77; }
done
mkdir -p "$work"
bin=$(readlink -f "$bin")
cd "$work"

make_large() {
  [ -s "large-$large_mib.tgz" ] && return
  echo "bench: building large layer (${large_mib} MiB from /usr)..." >&2
  find /usr -xdev \( -type f -o -type l -o -type d \) -printf '%s %P\n' 2>/dev/null | sort -k2 |
    awk -v cap=$((large_mib << 20)) '{ sum += $1 + 512; if (sum > cap) exit; sub(/^[0-9]+ /, ""); print }' >large.list ||
    true  # awk stops early on purpose; find and sort then die of SIGPIPE
  tar -C /usr --no-recursion --numeric-owner -cf large.tar -T large.list
  gzip -6 -c large.tar >"large-$large_mib.tgz.tmp" && mv "large-$large_mib.tgz.tmp" "large-$large_mib.tgz"
  rm -f large.tar large.list
}

make_small() {
  [ -s "small-$small_files.tgz" ] && return
  echo "bench: building small-file layer ($small_files files)..." >&2
  rm -rf small-src
  python3 - "$small_files" <<'PY'
import os, random, sys
n = int(sys.argv[1])
rnd = random.Random(5)
words = [("".join(rnd.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(2, 9))))
         for _ in range(5000)]
for i in range(n):
    d = "small-src/d%03d/e%03d" % (i // 10000, (i // 100) % 100)
    if i % 100 == 0:
        os.makedirs(d, exist_ok=True)
    size = rnd.randint(512, 8192)
    text = []
    while sum(map(len, text)) < size:
        text.append(rnd.choice(words) + (" " if rnd.random() < 0.9 else "\n"))
    with open("%s/f%05d.txt" % (d, i), "w") as f:
        f.write("".join(text)[:size])
PY
  tar -C small-src --numeric-owner -cf - . | gzip -6 >"small-$small_files.tgz.tmp"
  mv "small-$small_files.tgz.tmp" "small-$small_files.tgz"
  rm -rf small-src
}

# Seconds (wall) of one run of "$@" into a fresh ./dest.
timed() {
  rm -rf dest && mkdir dest && sync
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >/dev/null
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}
best() {  # best of $rounds
  local b="" t
  for _ in $(seq "$rounds"); do
    t=$(timed "$@")
    if [ -z "$b" ] || [ "$(echo "$t < $b" | bc -l)" = 1 ]; then b=$t; fi
  done
  echo "$b"
}
snap() { "$bin" unpack --no-sync --media-type gzip "$1" dest; }
snap_sync() { "$bin" unpack --media-type gzip "$1" dest; }
igzip_tar() { igzip -dc "$1" | tar -x -C dest; }
gzip_tar() { gzip -dc "$1" | tar -x -C dest; }

for layer in $layers; do
  case $layer in
    large) make_large; file=large-$large_mib.tgz ;;
    small) make_small; file=small-$small_files.tgz ;;
    *) echo "bench: unknown layer $layer" >&2; exit 2 ;;
  esac
  rm -rf dest && mkdir dest
  stats=$("$bin" unpack --no-sync --media-type gzip "$file" dest)
  bytes=$(sed -n 's/^uncompressed_bytes=//p' <<<"$stats")
  entries=$(sed -n 's/^entries=//p' <<<"$stats")
  rm -rf dest && mkdir dest
  rss_kib=$( { /usr/bin/time -f '%M' "$bin" unpack --no-sync --media-type gzip "$file" dest >/dev/null; } 2>&1 | tail -1)
  t_snap=$(best snap "$file")
  t_sync=$(timed snap_sync "$file")
  t_igzip=$(best igzip_tar "$file")
  t_gzip=$(best gzip_tar "$file")
  rm -rf dest
  mib=$(echo "$bytes / 1048576" | bc -l)
  echo
  printf 'layer %s: %s, %.0f MiB compressed, %.0f MiB tar, %d entries, best of %d\n' "$layer" "$file" \
    "$(echo "$(stat -c %s "$file") / 1048576" | bc -l)" "$mib" "$entries" "$rounds"
  printf '  %-28s %8s %10s %11s %8s\n' tool seconds "MiB/s" "files/s" "time/snap"
  for row in "snapimport unpack:$t_snap" "snapimport unpack (syncfs):$t_sync" \
             "igzip -dc | tar -x:$t_igzip" "gzip -dc | tar -x:$t_gzip"; do
    name=${row%%:*} t=${row##*:}
    printf '  %-28s %8.2f %10.1f %11.0f %7.2fx\n' "$name" "$t" "$(echo "$mib / $t" | bc -l)" \
      "$(echo "$entries / $t" | bc -l)" "$(echo "$t / $t_snap" | bc -l)"
  done
  printf '  snapimport peak RSS: %.1f MiB\n' "$(echo "$rss_kib / 1024" | bc -l)"
done
