#!/usr/bin/env bash
# Restarts in the middle of a CRI pull (issue "A full disk, restarts mid-pull and a long soak").
# A seven-layer image (the three-layer test image plus four random 8 MiB layers) is pulled through
# CRI from a registry behind a throttling proxy (2 MiB/s per connection), so the pull is still
# streaming its large layers when, once the small base layers are committed, one of these happens
# (RESTART_CASE):
#   sigterm      snapimport gets SIGTERM (graceful stop) and is started again on the same root
#   sigkill      snapimport gets SIGKILL and is started again on the same root
#   containerd   containerd gets SIGKILL and is started again on the same root and config
# Then: the interrupted pull either completed or failed with an error that names the cause;
# pulling again succeeds and fetches none of the layers that are still committed when it starts
# (registry access log; a failed pull's lease ends and containerd's GC may remove what it unpacked,
# as containerd alone would); a container runs; after a Cleanup no staging, ingest or orphan snapshot
# directory is left, and snapimport's snapshots are exactly containerd's view of them.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/import_lib.sh"  # also: root (else exit 77), CRI_CLIENT, fail()

CASE=${RESTART_CASE:?RESTART_CASE must be sigterm, sigkill or containerd}
case "$CASE" in sigterm | sigkill | containerd) ;; *) si_die "RESTART_CASE=$CASE: want sigterm, sigkill or containerd" ;; esac
BIG_LAYERS=4
BIG_MIB=8
RATE=$((2 << 20))

si_init_workdir "e2e-restart-$CASE"
si_step "start a registry on 127.0.0.1" si_start_registry
start_proxy() {
  "$SI_PYTHON" "$SI_REPO_ROOT/tests/ops/throttle_proxy.py" "$SI_REGISTRY" "$RATE" >"$SI_WORK/proxy.port" \
    2>>"$SI_WORK/logs/proxy.log" &
  si_track throttle-proxy $!
  si_wait_for "the throttling proxy's port" 10 test -s "$SI_WORK/proxy.port"
  PROXY=127.0.0.1:$(head -n1 "$SI_WORK/proxy.port")
}
si_step "start a throttling proxy in front of it ($((RATE >> 20)) MiB/s per connection)" start_proxy

OCI=$SI_WORK/oci
build_image() {
  si_build_test_image "$OCI" v1
  local i d
  for i in $(seq 1 "$BIG_LAYERS"); do
    d=$SI_WORK/big$i
    mkdir -p "$d"
    head -c "$((BIG_MIB << 20))" /dev/urandom >"$d/big$i.bin"
    chmod 0644 "$d/big$i.bin"
    tar -C "$d" --create --file "$d.tar" --format=posix --numeric-owner --owner=0 --group=0 "big$i.bin"
    umoci raw add-layer --image "$OCI:v1" --history.created_by "random layer $i" "$d.tar"
    rm -rf "$d" "$d.tar"
  done
  umoci gc --layout "$OCI"
}
si_step "build a 7-layer image (3 small, $BIG_LAYERS x $BIG_MIB MiB random)" build_image
si_step "push it" si_push_image "$OCI" v1 "$SI_REGISTRY/test/restart:v1"
REF=$PROXY/test/restart:v1 # pulled through the proxy
mapfile -t LAYERS < <(jq -r ".layers[].digest" "$(si_image_manifest "$OCI" v1)")
[ "${#LAYERS[@]}" -eq 7 ] || fail "expected 7 layers, got ${#LAYERS[@]}"

si_write_hosts_dir "$PROXY"
si_step "start snapimport" si_imp_start_snapimport
si_step "start containerd $SI_CONTAINERD_VERSION (CRI on, snapimport as snapshotter and content store)" si_imp_start_cri_containerd
ENDPOINT=unix://$SI_CONTAINERD_SOCK
ROOT=$SI_SNAPIMPORT_ROOT

# --- the interrupted pull --------------------------------------------------------------------------
"$SNAPIMPORT_BIN" pull --image-endpoint "$ENDPOINT" --timeout 180 "$REF" >"$SI_WORK/logs/pull1.out" 2>&1 &
PULL_PID=$!
wait_base_committed() {
  local n
  for _ in $(seq 1 600); do
    n=$(si_imp_imported_count)
    [ "$n" -ge 3 ] && [ "$n" -lt 7 ] && return 0
    [ "$n" -ge 7 ] && { si_fail "the pull imported all 7 layers before the restart could happen"; return 1; }
    si_alive "$PULL_PID" || { si_fail "the pull ended before its base layers were committed"; return 1; }
    sleep 0.05
  done
  si_fail "the base layers were not committed within 30 s"
}
si_step "wait until the 3 base layers are committed and the large ones are streaming" wait_base_committed
# Which layers snapimport had committed when the restart came (its log names each).
mapfile -t COMMITTED < <(grep 'msg="imported layer"' "$SI_SNAPIMPORT_LOG" | grep -o 'layer=sha256:[0-9a-f]*' | cut -d= -f2)
si_log "committed before the restart: ${#COMMITTED[@]} layers"

restart_snapimport() { # SIGNAL
  local sig=$1 pid=$SI_SNAPIMPORT_PID rc=0
  kill "-$sig" "$pid"
  local deadline=$((SECONDS + 30))
  while si_alive "$pid"; do
    [ "$SECONDS" -lt "$deadline" ] || { si_fail "snapimport did not exit within 30 s of SIG$sig"; return 1; }
    sleep 0.05
  done
  wait "$pid" 2>/dev/null || rc=$?
  si_log "snapimport (pid $pid) exited with status $rc after SIG$sig"
  if [ "$sig" = TERM ] && [ "$rc" -ne 0 ]; then
    si_fail "snapimport's graceful stop exited with status $rc, want 0"
    return 1
  fi
  [ -n "$(find "$ROOT/staging" -mindepth 1 -maxdepth 1 2>/dev/null)" ] && si_log "staging held data at the stop (wiped at start-up)"
  mv "$SI_SNAPIMPORT_LOG" "$SI_WORK/logs/snapimport.before-restart.log"
  rm -f "$SI_SNAPIMPORT_SOCK"
  si_imp_start_snapimport
  si_wait_for "containerd to reach snapimport again" 60 si_ctr -n k8s.io snapshots --snapshotter snapimport ls
}
restart_containerd() {
  local pid=$SI_CONTAINERD_PID
  kill -KILL "$pid"
  wait "$pid" 2>/dev/null || true
  si_log "containerd (pid $pid) killed"
  si_unmount_under "$SI_WORK/containerd"
  mv "$SI_CONTAINERD_LOG" "$SI_WORK/logs/containerd.before-restart.log"
  si_launch_containerd
}
case "$CASE" in
  sigterm) si_step "SIGTERM snapimport mid-pull and start it again" restart_snapimport TERM ;;
  sigkill) si_step "SIGKILL snapimport mid-pull and start it again" restart_snapimport KILL ;;
  containerd) si_step "SIGKILL containerd mid-pull and start it again" restart_containerd ;;
esac

rc=0
wait "$PULL_PID" || rc=$?
sed 's/^/    interrupted pull: /' "$SI_WORK/logs/pull1.out" >&2
if [ "$rc" -eq 0 ]; then
  grep -q "^1 pulled, 0 failed" "$SI_WORK/logs/pull1.out" || fail "the interrupted pull exited 0 without reporting success"
  si_log "the interrupted pull completed"
else
  # It failed: the message must say why (the connection to containerd or snapimport went away).
  grep -Eiq 'unavailable|connection|transport|closing|EOF|shutting down|canceled|cancelled|snapshot' "$SI_WORK/logs/pull1.out" ||
    fail "the interrupted pull failed without naming a cause: $(tr '\n' ' ' <"$SI_WORK/logs/pull1.out")"
  si_log "the interrupted pull failed with a named cause (exit $rc)"
fi

# --- what is still committed ---------------------------------------------------------------------------
# A failed pull ends its lease, and containerd's GC may then remove what the pull had unpacked
# (containerd alone does the same to its own snapshots). What counts is what is still committed
# when the pull is tried again: wait until containerd's GC has settled (two equal listings a second
# apart), then take the image's layers whose chain IDs snapimport still holds committed.
settle() {
  local a b
  b=$(si_backend_list "$SI_SNAPIMPORT_SOCK" | sort)
  for _ in $(seq 1 20); do
    sleep 1
    a=$b
    b=$(si_backend_list "$SI_SNAPIMPORT_SOCK" | sort)
    [ "$a" = "$b" ] && return 0
  done
  si_fail "snapimport's snapshots kept changing for 20 s after the interrupted pull"
}
si_step "wait for containerd's GC to settle" settle
mapfile -t CHAIN < <(si_chain_ids "$OCI" v1)
held=$(si_backend_list "$SI_SNAPIMPORT_SOCK" | awk -F'\t' '$3 == "committed" { print $1 }')
STILL=()
for i in "${!CHAIN[@]}"; do
  grep -q "${CHAIN[$i]}\$" <<<"$held" && STILL+=("${LAYERS[$i]}")
done
gone=$((${#COMMITTED[@]} - ${#STILL[@]}))
if [ "$gone" -ge 0 ]; then
  si_log "${#STILL[@]} of the image's layers are committed in snapimport before pulling again ($gone of the ${#COMMITTED[@]} committed before the restart were removed by containerd's GC after the failed pull)"
else
  # A graceful stop lets the imports in flight finish and commit.
  si_log "${#STILL[@]} of the image's layers are committed in snapimport before pulling again (${#COMMITTED[@]} before the restart, $((-gone)) more committed while snapimport stopped gracefully)"
fi
[ "$rc" -ne 0 ] || [ "$gone" -le 0 ] || fail "the interrupted pull succeeded, yet $gone of its layers are gone"

# --- pull again ---------------------------------------------------------------------------------------
pull_again() {
  "$SNAPIMPORT_BIN" pull --image-endpoint "$ENDPOINT" --timeout 180 "$REF" >"$SI_WORK/logs/pull2.out" 2>&1 ||
    { cat "$SI_WORK/logs/pull2.out" >&2; si_fail "pulling again after the restart failed"; return 1; }
  grep -q "^1 pulled, 0 failed" "$SI_WORK/logs/pull2.out" || si_fail "pulling again did not report success"
}
# The registry writes an access line when a response ends, so a download that began before the
# restart and finished during a graceful stop is logged after it: the mark is taken here, once
# the old process and its connections are gone.
MARK=$(wc -l <"$SI_REGISTRY_LOG")
si_step "pull again" pull_again
refetched=()
for d in "${STILL[@]}"; do
  n=$(tail -n "+$((MARK + 1))" "$SI_REGISTRY_LOG" | grep -F "\"GET /v2/" | grep -F "/blobs/$d HTTP/" | grep -cF '" 200 ' || true)
  [ "$n" -eq 0 ] || refetched+=("$d x$n")
done
[ "${#refetched[@]}" -eq 0 ] || fail "layers still committed when the pull was tried again were fetched again: ${refetched[*]}"
si_log "none of the ${#STILL[@]} layers still committed was fetched again"
applied=$(cat "$SI_WORK"/logs/containerd*.log | grep -c 'diff applied' || true)
[ "$applied" -eq 0 ] || fail "containerd applied $applied layers itself; snapimport should have imported all of them"

# --- state after Cleanup ---------------------------------------------------------------------------------
check_state() {
  si_imp_backend_cleanup "$SI_SNAPIMPORT_SOCK"
  local staged ingests dirs ids
  staged=$(find "$ROOT/staging" -mindepth 1 -maxdepth 1 -printf '%f ' 2>/dev/null)
  [ -z "$staged" ] || si_fail "staging holds '$staged' after Cleanup" || return 1
  ingests=$(find "$ROOT/content/ingest" -mindepth 1 -maxdepth 1 -printf '%f ' 2>/dev/null)
  [ -z "$ingests" ] || si_fail "content ingests left after the pull succeeded: $ingests" || return 1
  dirs=$(find "$ROOT/snapshots" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -n | tr '\n' ' ')
  ids=$(si_imp_live_ids "$ROOT" | sort -n | tr '\n' ' ')
  [ "$dirs" = "$ids" ] || si_fail "snapshots/ holds '$dirs' but the records are '$ids'" || return 1
  # containerd's view (k8s.io is the only namespace) against snapimport's own.
  local theirs ours chain c
  theirs=$(si_ctr -n k8s.io snapshots --snapshotter snapimport ls | awk 'NR > 1 { print $1 }' | sort)
  ours=$(si_backend_list "$SI_SNAPIMPORT_SOCK")
  [ "$(grep -c . <<<"$theirs")" -eq "$(grep -c . <<<"$ours")" ] ||
    si_fail "containerd sees $(grep -c . <<<"$theirs") snapshots, snapimport holds $(grep -c . <<<"$ours"):
containerd: $(tr '\n' ' ' <<<"$theirs")
snapimport: $(cut -f1 <<<"$ours" | tr '\n' ' ')" || return 1
  mapfile -t chain < <(si_chain_ids "$OCI" v1)
  for c in "${chain[@]}"; do
    grep -qx "$c" <<<"$theirs" || si_fail "containerd has no snapshot $c" || return 1
  done
  [ "$(grep -c . <<<"$theirs")" -eq "${#chain[@]}" ] ||
    si_fail "containerd holds $(grep -c . <<<"$theirs") snapshots, want the image's ${#chain[@]}" || return 1
  si_log "after Cleanup: no staging, no ingest; snapshots/ = records ($ids); snapimport's ${#chain[@]} snapshots = containerd's"
}
si_step "Cleanup; no staging, ingest or orphan; snapimport's snapshots = containerd's view" check_state
# The container runs after the state check: its snapshot's removal (--rm) goes through
# containerd's GC, which would race the comparison.
run() {
  si_ctr_run k8s.io --rm --snapshotter snapimport "$REF" "restart-$CASE" /bin/sh -c \
    'cat /top-marker.txt; stat -c %s /big4.bin' >"$SI_WORK/logs/run.out" 2>&1 ||
    { cat "$SI_WORK/logs/run.out" >&2; return 1; }
  grep -qx "$SI_IMG_MARKER" "$SI_WORK/logs/run.out" || si_fail "the container does not see the base layers" || return 1
  grep -qx "$((BIG_MIB << 20))" "$SI_WORK/logs/run.out" || si_fail "the top layer's file has the wrong size"
}
si_step "ctr run the image" run

si_print_timings
si_log "PASS: $CASE in the middle of a CRI pull on containerd $SI_CONTAINERD_VERSION; pulled again without refetching committed layers"
