#!/usr/bin/env bash
# Acceptance for import from containerd's writes ("Every pull at importer speed", item 1): a pull
# the importer cannot serve, because its Prepares carry no CRI layer labels (CRI with snapshot
# annotations off on 1.6/1.7; on 2.1 the transfer service with the proxy's exports NOT asking for
# remote snapshot annotations), of a five-layer image. containerd writes every layer blob into
# snapimport's content store; snapimport unpacks each while it streams in and commits it when
# containerd's unpacker Prepares its chain. containerd applies only the first layer itself (its
# debug log shows one "diff applied"), the rootfs equals `umoci unpack` of the same image
# (tests/unpack/treecmp.py), a container runs, and no staging is left.
#
#   SI_WI_PULL=cri (default)  CRI PullImage (`snapimport pull`)
#   SI_WI_PULL=ctr            `ctr images pull` (2.1: the transfer service; 1.7: its local pull,
#                             which fetches every blob first and Prepares without snapshot.ref)
#
# With SI_DIFF_PROXY=1 (item 2, containerd 1.7 and 2.1) containerd is configured with snapimport's
# diff service (lib.sh): then containerd applies no layer itself. Layers it would have applied (the
# first, or on 1.7's local `ctr` pull every one) are applied by snapimport's diff service, from the
# tree unpacked while the blob was written or from its own content store. SI_WI_DIFF_CONFIG=1 also
# sets snapimport's [import] diff_service = true, as an operator who configured it does: then every
# layer the diff service applies comes from the tree unpacked while containerd wrote it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/import_lib.sh" # also: root (else exit 77), CRI_CLIENT, fail()

MODE=${SI_WI_PULL:-cri}
DIFF=${SI_DIFF_PROXY:-0}
si_init_workdir "e2e-write-import-$MODE$([ "$DIFF" = 1 ] && echo -diff)"
si_step "start a registry on 127.0.0.1" si_start_registry
OCI=$SI_WORK/oci
TAG=v1
REF=$SI_REGISTRY/test/write-import:$TAG
si_step "build the three-layer test image" si_build_test_image "$OCI" "$TAG"
si_step "add layer 4 (300 small files)" si_imp_add_layer "$OCI" "$TAG" four 300
si_step "add layer 5" si_imp_add_layer "$OCI" "$TAG" five
si_step "push it to $REF" si_push_image "$OCI" "$TAG" "$REF"
mapfile -t LAYERS < <(jq -r ".layers[].digest" "$(si_image_manifest "$OCI" "$TAG")")
mapfile -t CHAIN < <(si_chain_ids "$OCI" "$TAG")
N=${#LAYERS[@]}
[ "$N" -eq 5 ] || fail "expected 5 layers, got $N"

si_write_hosts_dir "$SI_REGISTRY"
export SI_CRI_ANNOTATIONS=0 SI_CONTAINERD_REMOTE_ANNOTATIONS=false
DIFF_CONFIG=${SI_WI_DIFF_CONFIG:-0}
[ "$DIFF_CONFIG" != 1 ] || export SI_IMP_EXTRA_TOML=$'\n[import]\ndiff_service = true'
si_step "start snapimport" si_imp_start_snapimport
si_step "start containerd (CRI, snapshot annotations off, snapimport as snapshotter and content store)" \
  si_imp_start_cri_containerd

case "$MODE" in
  cri)
    pull() {
      "$SNAPIMPORT_BIN" pull --image-endpoint "unix://$SI_CONTAINERD_SOCK" "$REF" | tee "$SI_WORK/logs/pull.out"
      grep -q "^1 pulled, 0 failed" "$SI_WORK/logs/pull.out"
    }
    ;;
  ctr)
    [ "$SI_CONTAINERD_MAJOR" -ge 2 ] || [ "$DIFF" = 1 ] ||
      fail "SI_WI_PULL=ctr needs containerd 2.x (the transfer service) or SI_DIFF_PROXY=1"
    pull() {
      si_ctr -n k8s.io images pull --snapshotter snapimport "$REF" >"$SI_WORK/logs/pull.out" 2>&1 ||
        { tail -n 20 "$SI_WORK/logs/pull.out" >&2; return 1; }
    }
    ;;
  *) fail "SI_WI_PULL=$MODE: expected cri or ctr" ;;
esac
si_step "pull $REF ($MODE)" pull

# --- who did the work ----------------------------------------------------------------------------
applied=$(si_imp_applied_count)
from_writes=$(grep -c "msg=\"imported layer from containerd's write\"" "$SI_SNAPIMPORT_LOG" || true)
by_diff=$(grep -c 'msg="applied layer"' "$SI_SNAPIMPORT_LOG" || true)
content_done=$(si_imp_metric snapimport_imports_completed_total 'source="content"')
registry_done=$(si_imp_metric snapimport_imports_completed_total 'source="registry"')
no_labels=$(si_imp_metric snapimport_fallbacks_total 'reason="no_labels"')
declined=$(si_imp_metric snapimport_fallbacks_total 'reason="apply_declined"')
si_log "containerd diff applied=$applied, imported from writes=$from_writes, applied by snapimport's diff service=$by_diff (imports_completed{content}=$content_done), from the registry=$registry_done, no_labels fallbacks=$no_labels, declined applies=$declined"
[ "$registry_done" -eq 0 ] || fail "the importer fetched $registry_done layers itself: the pull carried CRI labels"
# Prepares with snapshot.ref: every layer after the first is committed from its write. 1.7's
# local ctr pull Prepares without it, so every layer is applied.
want_writes=$((N - 1))
[ "$MODE" = ctr ] && [ "$SI_CONTAINERD_MAJOR" -lt 2 ] && want_writes=0
busy=$(si_imp_metric snapimport_fallbacks_total 'reason="busy"')
if [ "$DIFF" = 1 ]; then
  # containerd applies nothing; each layer is committed from its write or applied by the diff
  # service. A write that came while max_concurrent_write_imports (4) tees ran is not teed
  # (fallbacks{reason="busy"}): its layer is then applied by the diff service from the store.
  [ "$applied" -eq 0 ] || fail "containerd applied $applied layers itself with snapimport's diff service configured, want none"
  [ $((from_writes + by_diff)) -eq "$N" ] ||
    fail "$from_writes layers committed from their writes and $by_diff applied by snapimport's diff service, want $N in all"
  [ "$from_writes" -ge $((want_writes - busy)) ] ||
    fail "snapimport imported $from_writes layers from containerd's writes, want $want_writes ($busy not teed: busy)"
  [ "$declined" -eq 0 ] || fail "snapimport's diff service declined $declined applies"
  if [ "$DIFF_CONFIG" = 1 ]; then
    from_tee=$(grep 'msg="applied layer"' "$SI_SNAPIMPORT_LOG" | grep -c 'from=write' || true)
    si_log "with diff_service = true: $from_tee of $by_diff applied layers from their writes, $busy writes not teed (busy)"
    [ $((by_diff - from_tee)) -le "$busy" ] ||
      fail "with diff_service = true, only $from_tee of the $by_diff applied layers came from their writes ($busy busy)"
  fi
  [ "$content_done" -eq "$N" ] || fail "imports_completed_total{source=\"content\"} is $content_done, want $N"
else
  [ "$applied" -eq 1 ] || fail "containerd applied $applied layers itself, want only the first"
  [ "$by_diff" -eq 0 ] || fail "snapimport's diff service applied $by_diff layers, but containerd was not configured to use it"
  [ "$from_writes" -eq "$want_writes" ] || fail "snapimport imported $from_writes layers from containerd's writes, want $want_writes"
  [ "$content_done" -eq $((N - 1)) ] || fail "imports_completed_total{source=\"content\"} is $content_done, want $((N - 1))"
  for i in $(seq 1 $((N - 1))); do
    [ "$want_writes" -gt 0 ] || break
    grep "msg=\"imported layer from containerd's write\"" "$SI_SNAPIMPORT_LOG" | grep -q "layer=${LAYERS[$i]}" ||
      fail "layer $((i + 1)) (${LAYERS[$i]}) was not imported from its write"
  done
fi
# --- what `snapimport status` shows: each layer's source and how it reached the snapshot ---------
si_imp_status >"$SI_WORK/logs/status.out"
grep -q "SOURCE    VIA" "$SI_WORK/logs/status.out" || fail "snapimport status shows no SOURCE and VIA columns: $(cat "$SI_WORK/logs/status.out")"
by_prepare=0 by_apply=0
for i in $(seq 0 $((N - 1))); do
  got=$(si_imp_layer_status "${LAYERS[$i]}")
  case "$got" in
    "done content prepare") by_prepare=$((by_prepare + 1)) ;;
    "done content apply") by_apply=$((by_apply + 1)) ;;
    "fallback - -")
      # containerd's unpacker applies the first layer it needs itself, before it fetches.
      [ "$DIFF" = 0 ] && [ "$i" -eq 0 ] && [ "$want_writes" -gt 0 ] ||
        fail "snapimport status shows layer $((i + 1)) (${LAYERS[$i]}) as '$got'" ;;
    *) [ "$DIFF" = 1 ] || [ "$want_writes" -eq 0 ] ||
         fail "snapimport status shows layer $((i + 1)) (${LAYERS[$i]}) as '$got', want 'done content prepare'" ;;
  esac
done
diff_applies=$(si_imp_metric snapimport_diff_applies_total)
si_log "snapimport status: $by_prepare layers done from content via prepare, $by_apply via apply; snapimport_diff_applies_total=$diff_applies"
[ "$by_prepare" -eq "$from_writes" ] ||
  fail "snapimport status shows $by_prepare layers committed for a Prepare, the log $from_writes"
[ "$by_apply" -eq "$by_diff" ] || fail "snapimport status shows $by_apply layers applied, the log $by_diff"
[ "$diff_applies" -eq "$by_diff" ] || fail "snapimport_diff_applies_total is $diff_applies, the log has $by_diff applies"

content=$(si_ctr -n k8s.io content ls -q)
for l in "${LAYERS[@]}"; do
  grep -qx "$l" <<<"$content" || fail "layer blob $l is not in the content store (containerd wrote it)"
done

# --- the chain containerd sees --------------------------------------------------------------------
snaps=$(si_ctr -n k8s.io snapshots --snapshotter snapimport ls | awk 'NR > 1 { print $1 }' | sort)
want=$(printf '%s\n' "${CHAIN[@]}" | sort)
[ "$snaps" = "$want" ] || fail "containerd's k8s.io snapshots are '$snaps', want the chain '$want'"

# --- the rootfs equals umoci unpack of the same image ---------------------------------------------
si_step "umoci unpack the reference rootfs" umoci unpack --image "$OCI:$TAG" "$SI_WORK/ref"
VIEW=$SI_WORK/view
mkdir -p "$VIEW"
mount_view() {
  local json type opts
  json=$(si_ctr -n k8s.io snapshots --snapshotter snapimport view --mounts wi-view "${CHAIN[$((N - 1))]}") || return 1
  # ctr prints containerd's mount.Mount: Type, Source, Options.
  type=$(jq -r '.[0] | .type // .Type' <<<"$json")
  opts=$(jq -r '.[0] | (.options // .Options) | join(",")' <<<"$json") ||
    { si_fail "cannot read the view's mounts: $json"; return 1; }
  [ "$type" = overlay ] || { si_fail "the view of the top chain mounts as '$type', want overlay"; return 1; }
  mount -t overlay overlay -o "ro,$opts" "$VIEW"
}
si_step "mount a view of the top chain" mount_view
cmp_rc=0
python3 "$SI_REPO_ROOT/tests/unpack/treecmp.py" "$SI_WORK/ref/rootfs" "$VIEW" || cmp_rc=$?
umount "$VIEW"
si_ctr -n k8s.io snapshots --snapshotter snapimport rm wi-view
[ "$cmp_rc" -eq 0 ] || fail "the snapshot chain differs from umoci unpack of the image (above)"
si_log "the rootfs equals umoci unpack of $OCI:$TAG"

# --- a container runs -----------------------------------------------------------------------------
SCRIPT='echo "MARKER=$(cat /top-marker.txt)"; echo "FIVE=$(cat /layers/five.txt)"; echo "FOUR=$(find /layers/four -type f | wc -l)";
if [ -e '"$SI_IMG_DELETED"' ]; then echo DELETED=present; else echo DELETED=absent; fi'
run() {
  si_ctr_run k8s.io --rm --snapshotter snapimport "$REF" write-import-1 /bin/sh -c "$SCRIPT" \
    >"$SI_WORK/logs/run.out" 2>"$SI_WORK/logs/run.err" || { cat "$SI_WORK/logs/run.err" >&2; return 1; }
}
si_step "ctr run the image" run
sed 's/^/    container: /' "$SI_WORK/logs/run.out" >&2
grep -qx "MARKER=$SI_IMG_MARKER" "$SI_WORK/logs/run.out" || fail "top-layer marker missing in the container"
grep -qx "FIVE=layer five" "$SI_WORK/logs/run.out" || fail "layer 5's file missing in the container"
grep -qx "FOUR=300" "$SI_WORK/logs/run.out" || fail "layer 4's files missing in the container"
grep -qx "DELETED=absent" "$SI_WORK/logs/run.out" || fail "whiteout-deleted file is visible"

# --- nothing left in staging ----------------------------------------------------------------------
left=$(find "$SI_SNAPIMPORT_ROOT/staging" -mindepth 1 -maxdepth 1 | wc -l)
[ "$left" -eq 0 ] || fail "staging holds $left entries after the pull: $(ls "$SI_SNAPIMPORT_ROOT/staging")"
si_log "PASS: $from_writes of $N layers committed from containerd's writes, $by_diff applied by snapimport's diff service, $applied by containerd ($MODE pull, containerd $SI_CONTAINERD_VERSION)"
