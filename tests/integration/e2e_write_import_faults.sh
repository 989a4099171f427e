#!/usr/bin/env bash
# Acceptance for import from containerd's writes ("Every pull at importer speed", item 3): pulls
# without CRI layer labels from tests/registry/fault_registry.py (a real HTTP registry on
# 127.0.0.1) of a four-layer image whose last layer goes wrong. Each case must leave no snapshot of
# that layer and no staging after Cleanup, and the pull must end as containerd alone would end it.
#   kill -9    snapimport is killed while the (slow) last layer streams in; restarted on the same
#              root, containerd's retried pull succeeds and the image runs
#   cancelled  the client of a pull goes away while the last layer streams in
#   corrupt    the last layer arrives with a flipped byte: containerd's commit of the blob fails
#              its digest check, the pull fails
# (A blob whose diff_id does not match the config: tests/unit/plugin/WriteImporter_test.cpp.)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/import_lib.sh" # also: root (else exit 77), CRI_CLIENT, fail()

si_init_workdir e2e-write-import-faults
OCI=$SI_WORK/oci
TAG=v1
si_step "build the three-layer test image" si_build_test_image "$OCI" "$TAG"
big=$SI_WORK/big
mkdir -p "$big/layers"
head -c $((3 << 20)) /dev/urandom >"$big/layers/big.bin"
tar -C "$big" -cf "$big.tar" layers
si_step "add layer 4 (3 MiB of random bytes)" umoci raw add-layer --image "$OCI:$TAG" "$big.tar"
rm -rf "$big" "$big.tar"
mapfile -t CHAIN < <(si_chain_ids "$OCI" "$TAG")

FPORT=$(si_free_port)
RPORT=$(si_free_port)
"$SI_PYTHON" "$SI_REPO_ROOT/tests/registry/fault_registry.py" "$OCI" "$TAG" "$FPORT" "$RPORT" \
  >>"$SI_WORK/logs/fault_registry.log" 2>&1 &
si_track fault_registry $!
si_wait_for "the fault registry" 30 curl -fsS -o /dev/null "http://127.0.0.1:$FPORT/v2/"
REG=127.0.0.1:$FPORT
si_write_hosts_dir "$REG"

export SI_CRI_ANNOTATIONS=0 SI_CONTAINERD_REMOTE_ANNOTATIONS=false
si_step "start snapimport" si_imp_start_snapimport
si_step "start containerd (CRI, snapshot annotations off)" si_imp_start_cri_containerd
ENDPOINT=unix://$SI_CONTAINERD_SOCK
ROOT=$SI_SNAPIMPORT_ROOT
STAGING=$ROOT/staging

# No snapshot of the last layer's chain, on either side; nothing staged after Cleanup. containerd
# 1.7 and 2.1 answer the failed PullImage first and remove their extraction snapshot of the last
# layer a moment later (with their own snapshotter as well), so that removal is waited for.
last_layer_snapshots() {
  si_ctr -n k8s.io snapshots --snapshotter snapimport ls | awk 'NR > 1 { print "containerd: " $1 }' |
    grep "${CHAIN[3]}" || true
  si_backend_list "$SI_SNAPIMPORT_SOCK" | grep "${CHAIN[3]}" | sed 's/^/snapimport: /' || true
}
check_clean() {
  local what=$1 staged held i
  for i in $(seq 1 100); do
    held=$(last_layer_snapshots)
    [ -n "$held" ] || break
    sleep 0.2
  done
  [ -z "$held" ] || { si_fail "$what: a snapshot of the last layer is still there after 20 s: $held"; return 1; }
  # Trees staged from the failed pull's good layers go when containerd's GC deletes their blobs
  # (asynchronously, after the pull's lease is gone), at the latest at a Cleanup after that.
  for i in $(seq 1 100); do
    si_imp_backend_cleanup "$SI_SNAPIMPORT_SOCK"
    staged=$(find "$STAGING" -mindepth 1 -maxdepth 1 -printf '%f ' 2>/dev/null)
    [ -n "$staged" ] || break
    sleep 0.2
  done
  [ -z "$staged" ] || { si_fail "$what: staging holds '$staged' after Cleanup, 20 s after the pull"; return 1; }
  si_log "$what: no snapshot of the last layer, staging empty after Cleanup"
}
# Waits until snapimport has begun unpacking the last layer from containerd's write.
LAST=$(jq -r '.layers[-1].digest' "$(si_image_manifest "$OCI" "$TAG")")
tees() { grep "unpacking layer as containerd writes it" "$SI_SNAPIMPORT_LOG" | grep -c "layer=$LAST" || true; }
teeing() { [ "$(tees)" -gt "$BASE" ]; }
# The tee is logged before its unpack thread has made its staging directory: wait for both.
write_staged() { [ -n "$(find "$STAGING" -mindepth 1 -maxdepth 1 -name 'write-*')" ]; }
unpacking_last() {
  si_wait_for "snapimport to unpack the last layer as containerd writes it" 60 teeing &&
    si_wait_for "a write staging directory while the last layer streams in" 10 write_staged
}

# --- kill -9 mid-layer, restart, retried pull succeeds ----------------------------------------------
BASE=$(tees)
"$SNAPIMPORT_BIN" pull --image-endpoint "$ENDPOINT" --timeout 300 "$REG/slowlast/img:$TAG" \
  >"$SI_WORK/logs/pull-kill.out" 2>&1 &
PULLER=$!
unpacking_last || fail "no staging directory while the last layer streams in"
staged=$(find "$STAGING" -mindepth 1 -maxdepth 1 -name 'write-*' | wc -l)
kill -9 "$SI_SNAPIMPORT_PID"
si_log "killed snapimport (pid $SI_SNAPIMPORT_PID) with $staged write staging directories"
restart() {
  rm -f "$SI_SNAPIMPORT_SOCK"
  si_imp_start_snapimport
  si_wait_for "containerd to reach snapimport again" 60 si_ctr -n k8s.io snapshots --snapshotter snapimport ls
}
si_step "restart snapimport on the same root" restart
[ -z "$(find "$STAGING" -mindepth 1 -maxdepth 1)" ] || fail "staging is not empty after the restart"
rc=0
wait "$PULLER" || rc=$?
sed 's/^/    pull during the kill: /' "$SI_WORK/logs/pull-kill.out" >&2
si_log "the pull during the kill exited $rc"
retry() {
  "$SNAPIMPORT_BIN" pull --image-endpoint "$ENDPOINT" --timeout 300 "$REG/slowlast/img:$TAG" \
    >"$SI_WORK/logs/pull-retry.out" 2>&1 || { cat "$SI_WORK/logs/pull-retry.out" >&2; return 1; }
  grep -q "^1 pulled, 0 failed" "$SI_WORK/logs/pull-retry.out"
}
si_step "the retried pull succeeds" retry
run() {
  si_ctr_run k8s.io --rm --snapshotter snapimport "$REG/slowlast/img:$TAG" wif-1 /bin/sh -c \
    'cat /top-marker.txt; wc -c < /layers/big.bin' >"$SI_WORK/logs/run.out" 2>"$SI_WORK/logs/run.err" ||
    { cat "$SI_WORK/logs/run.err" >&2; return 1; }
}
si_step "ctr run the image" run
grep -qx "$SI_IMG_MARKER" "$SI_WORK/logs/run.out" || fail "top-layer marker missing in the container"
grep -qx "$((3 << 20))" "$SI_WORK/logs/run.out" || fail "the last layer's file is wrong in the container"
si_imp_backend_cleanup "$SI_SNAPIMPORT_SOCK"
[ -z "$(find "$STAGING" -mindepth 1 -maxdepth 1)" ] || fail "staging is not empty after the retried pull and Cleanup"
# The image and its blobs go, so the next pulls write every layer again.
remove_image() {
  "$CRI_CLIENT" "$ENDPOINT" remove "$REG/slowlast/img:$TAG"
  local i
  for i in $(seq 1 100); do
    if ! si_ctr -n k8s.io content ls -q | grep -qx "$LAST" &&
      ! si_backend_list "$SI_SNAPIMPORT_SOCK" | grep -q "${CHAIN[3]}"; then return 0; fi
    sleep 0.1
  done
  si_fail "the last layer's blob or snapshot is still there after RemoveImage"
}
si_step "CRI RemoveImage (GC removes its blobs)" remove_image

# --- cancelled: the client goes away mid-layer ---------------------------------------------------------
BASE=$(tees)
"$SNAPIMPORT_BIN" pull --image-endpoint "$ENDPOINT" --timeout 120 "$REG/slowlast/img:$TAG" \
  >"$SI_WORK/logs/pull-cancel.out" 2>&1 &
PULLER=$!
unpacking_last || fail "no staging directory while the last layer streams in"
kill "$PULLER" 2>/dev/null || true
wait "$PULLER" 2>/dev/null || true
# containerd cancels the fetch with the PullImage call; the write stream ends without a commit.
gone() { [ -z "$(find "$STAGING" -mindepth 1 -maxdepth 1 -name 'write-*')" ]; }
si_wait_for "the abandoned unpack to remove its staging" 60 gone
si_step "cancelled pull leaves nothing" check_clean cancelled

# --- corrupt: the pull fails as it would without snapimport ------------------------------------------
rc=0
timeout 300 "$SNAPIMPORT_BIN" pull --image-endpoint "$ENDPOINT" --timeout 120 "$REG/badlayer/img:$TAG" \
  >"$SI_WORK/logs/pull-corrupt.out" 2>&1 || rc=$?
sed 's/^/    corrupt pull: /' "$SI_WORK/logs/pull-corrupt.out" >&2
[ "$rc" -ne 0 ] || fail "the pull of an image with a corrupt layer succeeded"
grep -q "unexpected commit digest\|failed precondition\|digest" "$SI_WORK/logs/pull-corrupt.out" "$SI_CONTAINERD_LOG" ||
  fail "the corrupt pull did not fail on the blob's digest"
si_step "corrupt blob leaves nothing" check_clean corrupt

si_log "PASS: corrupt, cancelled and killed pulls leave no snapshot and no staging; the retry runs"
