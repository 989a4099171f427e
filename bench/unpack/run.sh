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
#
# Rows:
#   snapimport unpack                      what the importer's unpack stage does: inflate, diff_id
#                                          sha256, tar parse, confined writes (the registry client
#                                          verifies the compressed digest on its own)
#   snapimport unpack --compressed-digest  plus a sha256 of the compressed blob
#   igzip -dc | tar -x, gzip -dc | tar -x  two processes and a pipe, no digests at all
# All run with --no-sync like tar; one extra run per layer shows the cost of snapimport's syncfs.
# BENCH_BASELINE=/path/to/another/snapimport adds that build's `unpack` to every round (row
# "baseline snapimport unpack") and prints its CPU per GiB beside this one's, with the change:
# an A/B of two builds on the same layers, file systems and machine state.
#
# Method: $BENCH_ROUNDS rounds; in each, every tool extracts once, in a rotating order, into its
# own new directory; the best time per tool counts. Nothing is deleted while a round runs: on
# ext4 without a journal, inodes freed in the last minute are skipped by the allocator one by
# one, so a big `rm -rf` just before a timed run made the next run several times slower. By
# default (BENCH_FS=ext4) each round gets a fresh ext4 file system on a loop device (direct I/O,
# so no double caching) and the whole round lands on equal ground; BENCH_FS=dir uses
# $BENCH_WORK itself, BENCH_FS=tmpfs a tmpfs (CPU cost only, no disk). Peak RSS of snapimport is
# measured with /usr/bin/time. Needs root (tar -x keeps owners; loop devices).
set -euo pipefail
bin=${SNAPIMPORT_BIN:?SNAPIMPORT_BIN must point at the snapimport binary}
work=${BENCH_WORK:-/var/tmp/snapimport-unpack-bench}
large_mib=${BENCH_LARGE_MIB:-1024}
small_files=${BENCH_SMALL_FILES:-100000}
rounds=${BENCH_ROUNDS:-3}
layers=${BENCH_LAYERS:-large small}
fs=${BENCH_FS:-ext4}
baseline=${BENCH_BASELINE:-}
if [ "$(id -u)" -ne 0 ]; then echo "bench: needs root, skipping" >&2; exit 77; fi
for t in igzip gzip tar python3 bc /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "bench: $t missing (scripts/setup.sh installs it)" >&2; exit 77; }
done
mkdir -p "$work"
bin=$(readlink -f "$bin")
cd "$work"
mnt=$work/mnt
loopdev=""
cleanup() {
  if mountpoint -q "$mnt" 2>/dev/null; then umount "$mnt"; fi
  if [ -n "$loopdev" ]; then losetup -d "$loopdev" 2>/dev/null || true; fi
  rm -f "$work/fs.img"
}
trap cleanup EXIT

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

# A fresh place for one round's extractions, big enough for all of them ($1 bytes, $2 inodes).
round_dir() {
  local bytes=$1 inodes=$2
  cleanup
  loopdev=""
  case $fs in
    ext4)
      truncate -s $((bytes + (256 << 20))) "$work/fs.img"
      mkfs.ext4 -q -F -N "$inodes" -E lazy_itable_init=0,lazy_journal_init=0 "$work/fs.img"
      if ! loopdev=$(losetup --direct-io=on -f --show "$work/fs.img" 2>/dev/null); then
        echo "bench: no loop device here; falling back to BENCH_FS=dir" >&2
        rm -f "$work/fs.img"
        loopdev="" fs=dir
        round_dir "$bytes" "$inodes"
        return
      fi
      mkdir -p "$mnt" && mount "$loopdev" "$mnt"
      ;;
    tmpfs)
      mkdir -p "$mnt" && mount -t tmpfs -o size=$((bytes + (256 << 20))),nr_inodes=$inodes tmpfs "$mnt"
      ;;
    dir)
      mkdir -p "$mnt" && rm -rf "${mnt:?}"/*
      ;;
    *) echo "bench: unknown BENCH_FS=$fs (ext4, tmpfs or dir)" >&2; exit 2 ;;
  esac
}

tools=(snap snap_cd igzip_tar gzip_tar)        # timed in every round
rows=(snap snap_cd snap_sync igzip_tar gzip_tar) # printed
cpu_tools=(snap)                                 # user and system CPU recorded
if [ -n "$baseline" ]; then
  baseline=$(readlink -f "$baseline")
  [ -x "$baseline" ] || { echo "bench: BENCH_BASELINE=$baseline is not an executable" >&2; exit 2; }
  tools+=(base) rows+=(base) cpu_tools+=(base)
fi
declare -A label=(
  [snap]="snapimport unpack"
  [base]="baseline snapimport unpack"
  [snap_cd]="snapimport --compressed-digest"
  [snap_sync]="snapimport unpack (syncfs)"
  [igzip_tar]="igzip -dc | tar -x"
  [gzip_tar]="gzip -dc | tar -x"
)
run_tool() {  # tool layer-file dest
  case $1 in
    snap | base)
      local b=$bin
      [ "$1" = base ] && b=$baseline
      /usr/bin/time -o "$work/cpu" -f '%U %S' "$b" unpack --no-sync --media-type gzip "$2" "$3" ;;
    snap_cd) "$bin" unpack --no-sync --compressed-digest --media-type gzip "$2" "$3" ;;
    snap_sync) "$bin" unpack --media-type gzip "$2" "$3" ;;
    igzip_tar) igzip -dc "$2" | tar -x -C "$3" ;;
    gzip_tar) gzip -dc "$2" | tar -x -C "$3" ;;
  esac
}
# Wall seconds of one extraction of layer $2 by tool $1 into the new directory $3.
timed() {
  mkdir "$3" && sync
  local t0 t1
  t0=$(date +%s.%N)
  run_tool "$1" "$2" "$3" >/dev/null
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}

for layer in $layers; do
  case $layer in
    large) make_large; file=large-$large_mib.tgz ;;
    small) make_small; file=small-$small_files.tgz ;;
    *) echo "bench: unknown layer $layer" >&2; exit 2 ;;
  esac
  file=$work/$file
  # One untimed run for the layer's statistics and snapimport's peak RSS.
  mkdir -p stats && rm -rf stats/dest
  rss_kib=$( { /usr/bin/time -f '%M' "$bin" unpack --no-sync --media-type gzip "$file" stats/dest >stats/out; } 2>&1 | tail -1)
  bytes=$(sed -n 's/^uncompressed_bytes=//p' stats/out)
  entries=$(sed -n 's/^entries=//p' stats/out)
  rm -rf stats
  declare -A best=() cpu_best=() cpu_user=() cpu_sys=()
  n=${#tools[@]}
  for r in $(seq 0 $((rounds - 1))); do
    extra=0
    [ "$r" = 0 ] && extra=1  # the syncfs run
    round_dir $(((n + extra) * (bytes + bytes / 8 + (entries << 12)))) $(((n + extra) * (entries + 100) + 1000))
    order=()
    for i in $(seq 0 $((n - 1))); do order+=("${tools[$(((i + r) % n))]}"); done
    for t in "${order[@]}"; do
      s=$(timed "$t" "$file" "$mnt/$t")
      if [[ " ${cpu_tools[*]} " == *" $t "* ]]; then
        read -r u sy <"$work/cpu"  # user and system seconds of this run
        if [ -z "${cpu_best[$t]:-}" ] || [ "$(echo "$u + $sy < ${cpu_best[$t]}" | bc -l)" = 1 ]; then
          cpu_best[$t]=$(echo "$u + $sy" | bc -l) cpu_user[$t]=$u cpu_sys[$t]=$sy
        fi
      fi
      if [ -z "${best[$t]:-}" ] || [ "$(echo "$s < ${best[$t]}" | bc -l)" = 1 ]; then best[$t]=$s; fi
    done
    if [ "$r" = 0 ]; then best[snap_sync]=$(timed snap_sync "$file" "$mnt/snap_sync"); fi
  done
  cleanup
  mib=$(echo "$bytes / 1048576" | bc -l)
  echo
  printf 'layer %s: %s, %.0f MiB compressed, %.0f MiB tar, %d entries, best of %d, on %s\n' "$layer" \
    "$(basename "$file")" "$(echo "$(stat -c %s "$file") / 1048576" | bc -l)" "$mib" "$entries" "$rounds" "$fs"
  printf '  %-32s %8s %10s %11s %10s\n' tool seconds "MiB/s" "files/s" "time/snap"
  for t in "${rows[@]}"; do
    s=${best[$t]}
    printf '  %-32s %8.2f %10.1f %11.0f %9.2fx\n' "${label[$t]}" "$s" "$(echo "$mib / $s" | bc -l)" \
      "$(echo "$entries / $s" | bc -l)" "$(echo "$s / ${best[snap]}" | bc -l)"
  done
  printf '  snapimport peak RSS: %.1f MiB\n' "$(echo "$rss_kib / 1024" | bc -l)"
  # Issue "Import at the two-core floor", acceptance 2: CPU per GiB of tar, the least of the rounds.
  gib=$(echo "$bytes / 1073741824" | bc -l)
  for t in "${cpu_tools[@]}"; do
    printf '  %s CPU: %.2f s user + %.2f s system = %.2f CPU-s per GiB of tar\n' "${label[$t]}" \
      "$(echo "${cpu_user[$t]} / $gib" | bc -l)" "$(echo "${cpu_sys[$t]} / $gib" | bc -l)" \
      "$(echo "${cpu_best[$t]} / $gib" | bc -l)"
  done
  if [ -n "$baseline" ]; then
    printf '  CPU against the baseline: %+.1f %%\n' "$(echo "100 * (${cpu_best[snap]} / ${cpu_best[base]} - 1)" | bc -l)"
  fi
  unset best cpu_best cpu_user cpu_sys
done
