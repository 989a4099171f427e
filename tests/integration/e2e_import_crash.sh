#!/usr/bin/env bash
# Importer acceptance, issue 6 item 5: snapimport is killed (SIGKILL) during a CRI pull, restarted
# on the same root, and the retried pull succeeds; after a Cleanup no staged data remains
# (<root>/staging is empty) and <root>/snapshots holds exactly the directories of live records.
#   round 1: SNAPIMPORT_CRASH_AT=import.renamed:2 -- snapimport kills itself inside the commit of
#            the second imported layer (directory renamed into snapshots/, record not committed);
#   round 2: kill -9 from outside while a large layer (BIG_MIB MiB, random) is being unpacked in
#            staging.
# After each restart, containerd's retried CRI pull must succeed and the image must run.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/import_lib.sh"  # also: root (else exit 77), CRI_CLIENT, fail()

si_init_workdir e2e-import-crash
BIG_MIB=${BIG_MIB:-64}
si_step "start a registry on 127.0.0.1" si_start_registry
OCI=$SI_WORK/oci
REF1=$SI_REGISTRY/test/crash-small:v1
REF2=$SI_REGISTRY/test/crash-big:v1
si_step "build the three-layer test image" si_build_test_image "$OCI" small
add_big_layer() {
  local d=$SI_WORK/biglayer
  mkdir -p "$d"
  head -c "$((BIG_MIB << 20))" /dev/urandom >"$d/big.bin"
  chmod 0644 "$d/big.bin"
  BIG_SHA=$(sha256sum "$d/big.bin" | cut -d' ' -f1)
  tar -C "$d" --create --file "$SI_WORK/big.tar" --format=posix --numeric-owner --owner=0 --group=0 big.bin
  umoci tag --image "$OCI:small" big
  umoci raw add-layer --image "$OCI:big" --history.created_by "big random layer" "$SI_WORK/big.tar"
  si_imp_add_layer "$OCI" big after-big
  umoci gc --layout "$OCI"
  rm -rf "$d" "$SI_WORK/big.tar"
}
si_step "build a second image: the same base, a ${BIG_MIB} MiB random layer and a small one" add_big_layer
si_step "push $REF1" si_push_image "$OCI" small "$REF1"
si_step "push $REF2" si_push_image "$OCI" big "$REF2"

si_write_hosts_dir "$SI_REGISTRY"
ROOT=$SI_WORK/snapimport/root
STAGING=$ROOT/staging
ENDPOINT=unix://$SI_WORK/containerd/containerd.sock # set by si_start_containerd below

# state_of WHEN: what is on disk under the root, for the log.
state_of() {
  local staged snaps ids
  staged=$(find "$STAGING" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
  snaps=$(find "$ROOT/snapshots" -mindepth 1 -maxdepth 1 -printf '%f ' 2>/dev/null)
  ids=$(si_imp_live_ids "$ROOT" | tr '\n' ' ')
  si_log "$1: staging entries: $staged; snapshots/: ${snaps:-none}; records: ${ids:-none}"
}

# A pull that must fail because snapimport dies under it.
pull_expect_failure() {
  local ref=$1 out=$2 rc=0
  timeout 300 "$SNAPIMPORT_BIN" pull --image-endpoint "$ENDPOINT" --timeout 120 "$ref" >"$out" 2>&1 || rc=$?
  sed 's/^/    first pull: /' "$out" >&2
  [ "$rc" -ne 0 ] || si_fail "the pull of $ref succeeded although snapimport was killed during it"
}

restart() {
  rm -f "$SI_SNAPIMPORT_SOCK" # the killed daemon's socket; wait for the new one
  si_imp_start_snapimport
  # containerd reconnects to the proxy by itself (backoff of at most a few seconds).
  si_wait_for "containerd to reach snapimport again" 60 si_ctr -n k8s.io snapshots --snapshotter snapimport ls
}

pull_ok() {
  local ref=$1 out=$2
  "$SNAPIMPORT_BIN" pull --image-endpoint "$ENDPOINT" --timeout 300 "$ref" >"$out" 2>&1 ||
    { cat "$out" >&2; si_fail "the retried pull of $ref failed"; return 1; }
  sed 's/^/    retried pull: /' "$out" >&2
  grep -q "^1 pulled, 0 failed" "$out" || si_fail "the retried pull of $ref did not report success"
}

# After a Cleanup: nothing staged, and snapshots/ holds the live records' directories, no more.
check_clean() {
  si_imp_backend_cleanup "$SI_SNAPIMPORT_SOCK"
  local staged dirs ids
  staged=$(find "$STAGING" -mindepth 1 -maxdepth 1 -printf '%f ' 2>/dev/null)
  [ -z "$staged" ] || si_fail "staged data remains after Cleanup: $staged" || return 1
  dirs=$(find "$ROOT/snapshots" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -n | tr '\n' ' ')
  ids=$(si_imp_live_ids "$ROOT" | sort -n | tr '\n' ' ')
  [ "$dirs" = "$ids" ] ||
    si_fail "after Cleanup snapshots/ holds '$dirs' but the live records are '$ids'" || return 1
  si_log "after Cleanup: staging empty; snapshots/ = live records ($ids)"
}

check_chain() {
  local tag=$1 snaps c
  snaps=$(si_ctr -n k8s.io snapshots --snapshotter snapimport ls | awk 'NR > 1 { print $1 }')
  for c in $(si_chain_ids "$OCI" "$tag"); do
    grep -qx "$c" <<<"$snaps" || si_fail "containerd has no snapshot $c of image $tag" || return 1
  done
  # Every committed backend snapshot is one chain link: no duplicate from the crashed attempt.
  local dup
  dup=$(si_backend_list "$SI_SNAPIMPORT_SOCK" | awk -F'\t' '$3 == "committed" { print $1 }' |
    sed 's/@.*//' | sort | uniq -d)
  [ -z "$dup" ] || si_fail "snapimport holds duplicate committed snapshots: $dup"
}

# --- round 1: crash point inside the commit of an imported layer -------------------------------------
start_crashing() { SNAPIMPORT_CRASH_AT=import.renamed:2 si_imp_start_snapimport; }
si_step "start snapimport with SNAPIMPORT_CRASH_AT=import.renamed:2" start_crashing
FIRST_PID=$SI_SNAPIMPORT_PID
si_step "start containerd (CRI on, snapimport as snapshotter and content store)" si_imp_start_cri_containerd
si_step "CRI pull $REF1 while snapimport kills itself in the 2nd layer's commit" \
  pull_expect_failure "$REF1" "$SI_WORK/logs/pull1.out"
si_alive "$FIRST_PID" && fail "snapimport (pid $FIRST_PID) is still alive; the crash point was not reached"
wait "$FIRST_PID" 2>/dev/null || true
state_of "after the crash"
orphans=$(find "$ROOT/snapshots" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -n | tr '\n' ' ')
live=$(si_imp_live_ids "$ROOT" | sort -n | tr '\n' ' ')
[ "$orphans" != "$live" ] || fail "the crash left no renamed-but-unrecorded snapshot directory (crash point not inside the commit?)"
si_step "restart snapimport on the same root (no crash point)" restart
si_step "retry: CRI pull $REF1" pull_ok "$REF1" "$SI_WORK/logs/pull1-retry.out"
state_of "after the retried pull"
si_step "Cleanup; staging empty, snapshots/ = live records" check_clean
si_step "the image's chain is in containerd, without duplicates" check_chain small
run1() {
  si_ctr_run k8s.io --rm --snapshotter snapimport "$REF1" crash-1 /bin/sh -c 'cat /top-marker.txt' \
    >"$SI_WORK/logs/run1.out" 2>&1 || { cat "$SI_WORK/logs/run1.out" >&2; return 1; }
  grep -qx "$SI_IMG_MARKER" "$SI_WORK/logs/run1.out" || si_fail "container 1 does not see the top layer"
}
si_step "ctr run $REF1" run1

# --- round 2: kill -9 from outside while the big layer is being unpacked in staging -----------------
SECOND_PID=$SI_SNAPIMPORT_PID
"$SNAPIMPORT_BIN" pull --image-endpoint "$ENDPOINT" --timeout 120 "$REF2" >"$SI_WORK/logs/pull2.out" 2>&1 &
PULL_PID=$!
kill_mid_layer() {
  # Polls every few ms for the big file growing in a staging directory, then SIGKILLs snapimport.
  "$SI_PYTHON" - "$STAGING" "$SECOND_PID" "$((BIG_MIB << 20))" "$PULL_PID" <<'PY'
import glob, os, signal, sys, time
staging, pid, full, puller = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    for f in glob.glob(os.path.join(staging, "*", "fs", "big.bin")):
        try:
            size = os.stat(f).st_size
        except OSError:
            continue
        if 0 < size < full:
            os.kill(pid, signal.SIGKILL)
            print("killed snapimport (pid %d) with %d of %d bytes of big.bin unpacked in %s"
                  % (pid, size, full, os.path.dirname(os.path.dirname(f))), file=sys.stderr)
            sys.exit(0)
    try:
        os.kill(puller, 0)
    except OSError:
        sys.exit("the pull ended before the big layer was seen half-unpacked in staging")
    time.sleep(0.002)
sys.exit("the big layer never appeared in staging")
PY
}
si_step "kill -9 snapimport while the ${BIG_MIB} MiB layer is unpacking" kill_mid_layer
if wait "$PULL_PID"; then
  sed 's/^/    first pull: /' "$SI_WORK/logs/pull2.out" >&2
  fail "the pull of $REF2 succeeded although snapimport was killed during it"
fi
sed 's/^/    first pull: /' "$SI_WORK/logs/pull2.out" >&2
wait "$SECOND_PID" 2>/dev/null || true
state_of "after the kill"
[ -n "$(find "$STAGING" -mindepth 1 -maxdepth 1)" ] || fail "nothing was staged when snapimport was killed"
si_step "restart snapimport on the same root" restart
si_step "retry: CRI pull $REF2" pull_ok "$REF2" "$SI_WORK/logs/pull2-retry.out"
state_of "after the retried pull"
si_step "Cleanup; staging empty, snapshots/ = live records" check_clean
si_step "both images' chains are in containerd, without duplicates" check_chain big
run2() {
  si_ctr_run k8s.io --rm --snapshotter snapimport "$REF2" crash-2 /bin/sh -c \
    'cat /top-marker.txt /layers/after-big.txt; stat -c %s /big.bin' \
    >"$SI_WORK/logs/run2.out" 2>&1 || { cat "$SI_WORK/logs/run2.out" >&2; return 1; }
  grep -qx "$SI_IMG_MARKER" "$SI_WORK/logs/run2.out" || si_fail "container 2 does not see the base" || return 1
  grep -qx "layer after-big" "$SI_WORK/logs/run2.out" || si_fail "container 2 does not see its top layer" || return 1
  grep -qx "$((BIG_MIB << 20))" "$SI_WORK/logs/run2.out" || si_fail "big.bin has the wrong size in container 2"
}
si_step "ctr run $REF2" run2
# The big file's content, straight from the snapshot directory that holds it.
big=$(find "$ROOT/snapshots" -mindepth 3 -maxdepth 3 -path '*/fs/big.bin')
[ "$(wc -l <<<"$big")" -eq 1 ] || fail "expected one big.bin under snapshots/, found: $big"
[ "$(sha256sum "$big" | cut -d' ' -f1)" = "$BIG_SHA" ] || fail "big.bin differs from the pushed file"
imported=$(si_imp_imported_count)
applied=$(si_imp_applied_count)
# Round 1: layer 1 before the crash, layers 2 and 3 after the restart (layer 1 is found committed);
# round 2: the big layer and the one above it (the base is shared). containerd applied nothing.
si_log "imported-layer lines over both rounds=$imported, containerd diff applied=$applied"
[ "$imported" -eq 5 ] || fail "snapimport imported $imported layers over both rounds, want 5 (1 + 2 in round 1, 2 in round 2)"
[ "$applied" -eq 0 ] || fail "containerd applied $applied layers itself; the restarted importer should have done them"
si_print_timings
si_log "PASS: kill -9 during an import (crash point in commit, and mid-unpack), restart, retried pulls succeed, nothing staged or orphaned after Cleanup"
