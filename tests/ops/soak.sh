#!/usr/bin/env bash
# Soak: random CRI pulls and removals of 10 images that share layers, 1 to 8 pulls at a time,
# with containerd's GC in between, for SOAK_SECONDS (default 60; bench/soak/run.sh runs 30
# minutes). Samples snapimport's RSS, open file descriptors and threads after every round (the
# curve goes to $SOAK_CURVE, default <work>/curve.tsv, and is printed). At the end, with every
# image removed: every pull succeeded; fds and threads are back to their start-up level, RSS
# within SOAK_RSS_SLACK_MIB (default 24) of it; snapimport's disk usage is back to the baseline;
# and no directory is left that no record backs (snapshots/, staging/, content ingests and blobs).
set -euo pipefail
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/../integration/import_lib.sh" # root (else exit 77), CRI_CLIENT, fail()

DURATION=${SOAK_SECONDS:-60}
RSS_SLACK_MIB=${SOAK_RSS_SLACK_MIB:-24}
SEED=${SOAK_SEED:-$RANDOM}
RANDOM=$SEED
si_init_workdir soak
CURVE=${SOAK_CURVE:-$SI_WORK/curve.tsv}
si_log "soak: ${DURATION}s, seed $SEED, containerd $SI_CONTAINERD_VERSION"

si_step "start a registry on 127.0.0.1" si_start_registry
OCI=$SI_WORK/oci
# Ten images over a shared base: image i = base (3 layers) + shared layer s(i mod 3) (500 files)
# + its own layer u(i) (200 files).
build_images() {
  si_build_test_image "$OCI" base
  local s i
  for s in 0 1 2; do
    umoci tag --image "$OCI:base" "shared$s"
    si_imp_add_layer "$OCI" "shared$s" "shared$s" 500
  done
  for i in $(seq 0 9); do
    umoci tag --image "$OCI:shared$((i % 3))" "img$i"
    si_imp_add_layer "$OCI" "img$i" "unique$i" 200
  done
  umoci gc --layout "$OCI"
}
si_step "build 10 images sharing layers" build_images
push_all() {
  local i
  for i in $(seq 0 9); do si_push_image "$OCI" "img$i" "$SI_REGISTRY/soak/img$i:v1"; done
}
si_step "push them" push_all

si_write_hosts_dir "$SI_REGISTRY"
si_step "start snapimport" si_imp_start_snapimport
si_step "start containerd (CRI on, snapimport as snapshotter and content store)" si_imp_start_cri_containerd
ENDPOINT=unix://$SI_CONTAINERD_SOCK
ROOT=$SI_SNAPIMPORT_ROOT
PID=$SI_SNAPIMPORT_PID

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$PID/status"; }
threads() { awk '/^Threads:/ { print $2 }' "/proc/$PID/status"; }
fds() { find "/proc/$PID/fd" -mindepth 1 -maxdepth 1 | wc -l; }
# Idle connections (to the registry, to containerd) open and close on their own, so one sample can
# be one off either way. A leaked fd never closes: compare the most fds seen over 2 s at start-up
# with the fewest seen over 2 s at the end.
fds_over_2s() { # max|min
  local v best=
  for _ in 1 2 3 4 5; do
    v=$(fds)
    if [ -z "$best" ] || { [ "$1" = max ] && [ "$v" -gt "$best" ]; } || { [ "$1" = min ] && [ "$v" -lt "$best" ]; }; then best=$v; fi
    sleep 0.4
  done
  echo "$best"
}
disk_kib() { du -sk --apparent-size "$ROOT/snapshots" "$ROOT/content" "$ROOT/staging" 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'; }

# Remove every image and wait until snapimport holds no snapshot (containerd's GC).
remove_all() {
  local i
  for i in $(seq 0 9); do "$CRI_CLIENT" "$ENDPOINT" remove "$SI_REGISTRY/soak/img$i:v1" >/dev/null 2>&1 || true; done
  for _ in $(seq 1 300); do
    [ -z "$(si_backend_list "$SI_SNAPIMPORT_SOCK")" ] && return 0
    sleep 0.1
  done
  si_fail "after removing every image snapimport still holds: $(si_backend_list "$SI_SNAPIMPORT_SOCK" | cut -f1 | tr '\n' ' ')"
}

# Start-up level: after one pull and removal of every image (so lazily created pools, connection
# caches and SQLite pages exist), with nothing held.
warm() {
  local refs=() i
  for i in $(seq 0 9); do refs+=("$SI_REGISTRY/soak/img$i:v1"); done
  "$SNAPIMPORT_BIN" pull --image-endpoint "$ENDPOINT" --parallel 8 "${refs[@]}" >"$SI_WORK/logs/warm.out" 2>&1 ||
    { cat "$SI_WORK/logs/warm.out" >&2; return 1; }
  remove_all
  si_imp_backend_cleanup "$SI_SNAPIMPORT_SOCK"
}
BASE_DISK=$(disk_kib)
si_step "warm up: pull all 10, remove all" warm
sleep 1
START_RSS=$(rss_kib) START_FDS=$(fds_over_2s max) START_THREADS=$(threads)
si_log "start-up level: RSS $((START_RSS / 1024)) MiB, $START_FDS fds, $START_THREADS threads, disk ${BASE_DISK} KiB"
printf 'seconds\tround\tpulls\tremovals\trss_kib\tfds\tthreads\tdisk_kib\n' >"$CURVE"
printf '0\t0\t0\t0\t%s\t%s\t%s\t%s\n' "$START_RSS" "$START_FDS" "$START_THREADS" "$(disk_kib)" >>"$CURVE"

pulls=0 failures=0 removals=0 round=0
t0=$SECONDS
while [ $((SECONDS - t0)) -lt "$DURATION" ]; do
  round=$((round + 1))
  n=$((1 + RANDOM % 8))
  pids=()
  for ((k = 0; k < n; k++)); do
    ref=$SI_REGISTRY/soak/img$((RANDOM % 10)):v1
    "$SNAPIMPORT_BIN" pull --image-endpoint "$ENDPOINT" --timeout 120 "$ref" \
      >"$SI_WORK/logs/pull.$round.$k.out" 2>&1 &
    pids+=($!)
  done
  for ((k = 0; k < n; k++)); do
    pulls=$((pulls + 1))
    if ! wait "${pids[$k]}"; then
      failures=$((failures + 1))
      sed 's/^/    failed pull: /' "$SI_WORK/logs/pull.$round.$k.out" >&2
    fi
  done
  # Remove a random handful (containerd's GC removes what no image holds any more).
  r=$((RANDOM % 6))
  for ((k = 0; k < r; k++)); do
    "$CRI_CLIENT" "$ENDPOINT" remove "$SI_REGISTRY/soak/img$((RANDOM % 10)):v1" >/dev/null 2>&1 || true
    removals=$((removals + 1))
  done
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$((SECONDS - t0))" "$round" "$pulls" "$removals" "$(rss_kib)" "$(fds)" \
    "$(threads)" "$(disk_kib)" >>"$CURVE"
  si_alive "$PID" || fail "snapimport died during round $round"
done
si_log "soak: $round rounds, $pulls pulls ($failures failed), $removals removals in $((SECONDS - t0)) s"

si_step "remove every image; containerd's GC empties snapimport" remove_all
si_imp_backend_cleanup "$SI_SNAPIMPORT_SOCK"
sleep 1
END_RSS=$(rss_kib) END_FDS=$(fds_over_2s min) END_THREADS=$(threads) END_DISK=$(disk_kib)
printf 'end\t-\t%s\t%s\t%s\t%s\t%s\t%s\n' "$pulls" "$removals" "$END_RSS" "$END_FDS" "$END_THREADS" "$END_DISK" >>"$CURVE"
{
  echo "-- curve (every round; RSS and disk in KiB) --"
  awk -F'\t' 'NR == 1 || NR % 10 == 2 || $1 == "end"' "$CURVE" | column -t
} >&2

[ "$failures" -eq 0 ] || fail "$failures of $pulls pulls failed"
[ "$END_FDS" -le "$START_FDS" ] || fail "open fds: $END_FDS at the end, $START_FDS at start-up"
[ "$END_THREADS" -le "$START_THREADS" ] || fail "threads: $END_THREADS at the end, $START_THREADS at start-up"
[ "$END_RSS" -le $((START_RSS + RSS_SLACK_MIB * 1024)) ] ||
  fail "RSS: $((END_RSS / 1024)) MiB at the end, $((START_RSS / 1024)) MiB at start-up (slack $RSS_SLACK_MIB MiB)"
[ "$END_DISK" -le "$((BASE_DISK + 64))" ] || fail "disk: $END_DISK KiB at the end, baseline $BASE_DISK KiB"
staged=$(find "$ROOT/staging" -mindepth 1 -maxdepth 1 -printf '%f ' 2>/dev/null)
[ -z "$staged" ] || fail "staging holds '$staged' at the end"
ingests=$(find "$ROOT/content/ingest" -mindepth 1 -maxdepth 1 -printf '%f ' 2>/dev/null)
[ -z "$ingests" ] || fail "content ingests left: $ingests"
blobs=$(find "$ROOT/content/blobs" -type f -printf '%f ' 2>/dev/null)
[ -z "$blobs" ] || fail "content blobs left after every image was removed: $blobs"
dirs=$(find "$ROOT/snapshots" -mindepth 1 -maxdepth 1 -printf '%f ' 2>/dev/null)
[ -z "$dirs" ] || fail "snapshot directories left with no image: $dirs"
[ -z "$(si_imp_live_ids "$ROOT")" ] || fail "snapshot records left: $(si_imp_live_ids "$ROOT" | tr '\n' ' ')"
si_log "PASS: soak of ${DURATION}s: $pulls pulls all succeeded; RSS $((START_RSS / 1024))->$((END_RSS / 1024)) MiB, fds $START_FDS->$END_FDS, threads $START_THREADS->$END_THREADS, disk back to baseline, nothing unbacked"
