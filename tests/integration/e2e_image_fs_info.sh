#!/usr/bin/env bash
# Usage kubelet can trust: kubelet's image garbage collection reads CRI ImageFsInfo. With
# snapimport as CRI's snapshotter (containerd 1.6 or 2.1), the image filesystem containerd reports
# must be the filesystem snapimport's root is on, and its used bytes must match `du` of snapimport's
# snapshot directories, and follow pulls and removals: up by the image after a pull, back down
# after RemoveImage and GC. (CRI rescans usage every stats_collect_period; the test sets 1 s.)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/import_lib.sh"  # also: root (else exit 77), CRI_CLIENT, fail()

BIG_MIB=16
si_init_workdir e2e-image-fs-info
si_step "start a registry on 127.0.0.1" si_start_registry
OCI=$SI_WORK/oci
REF=$SI_REGISTRY/test/fsinfo:v1
build() {
  si_build_test_image "$OCI" v1
  local d=$SI_WORK/big
  mkdir -p "$d"
  head -c "$((BIG_MIB << 20))" /dev/urandom >"$d/big.bin"
  tar -C "$d" --create --file "$d.tar" --format=posix --numeric-owner --owner=0 --group=0 big.bin
  umoci raw add-layer --image "$OCI:v1" --history.created_by "random $BIG_MIB MiB" "$d.tar"
  rm -rf "$d" "$d.tar"
  umoci gc --layout "$OCI"
}
si_step "build a 4-layer image with a $BIG_MIB MiB file" build
si_step "push it to $REF" si_push_image "$OCI" v1 "$REF"
si_write_hosts_dir "$SI_REGISTRY"
si_step "start snapimport" si_imp_start_snapimport
export SI_CRI_STATS_PERIOD=1
si_step "start containerd $SI_CONTAINERD_VERSION (CRI on, snapimport as snapshotter and content store)" si_imp_start_cri_containerd
ENDPOINT=unix://$SI_CONTAINERD_SOCK
ROOT=$SI_SNAPIMPORT_ROOT

# fsinfo: "MOUNTPOINT USED_BYTES" of the first image filesystem (the one kubelet reads), or nothing.
fsinfo() { "$CRI_CLIENT" "$ENDPOINT" fsinfo | head -n1 | cut -d" " -f1,2; }
snap_du() { du -s -B1 "$ROOT/snapshots" | cut -f1; }

# used bytes within 5% (or 256 KiB) of du over snapimport's snapshot directories, after CRI's
# next scan. Prints the used bytes.
wait_used_matches_du() {
  local used want line
  for _ in $(seq 1 100); do
    line=$(fsinfo)
    used=${line##* }
    want=$(snap_du)
    if [ -n "$line" ] && awk -v u="$used" -v w="$want" 'BEGIN { d = u - w; if (d < 0) d = -d; exit !(d <= 262144 || d <= w * 0.05) }'; then
      echo "$used"
      return 0
    fi
    sleep 0.2
  done
  si_fail "ImageFsInfo reports '${line:-nothing}', du of snapimport's snapshots is $want bytes"
}

si_step "snapimport pull $REF" "$SNAPIMPORT_BIN" pull --image-endpoint "$ENDPOINT" "$REF"
[ "$(si_imp_imported_count)" -eq 4 ] || fail "expected snapimport to import 4 layers, got $(si_imp_imported_count)"
si_step "ImageFsInfo's used bytes match du after the pull" wait_used_matches_du >"$SI_WORK/used.after-pull"
used=$(cat "$SI_WORK/used.after-pull")
[ "$used" -ge $((BIG_MIB << 20)) ] || fail "ImageFsInfo reports $used used bytes after pulling a $BIG_MIB MiB image"
mp=$(fsinfo | cut -d' ' -f1)
[ -d "$mp" ] || fail "ImageFsInfo's mountpoint $mp is not a directory"
[ "$(stat -c %d "$mp")" = "$(stat -c %d "$ROOT")" ] ||
  fail "ImageFsInfo names $mp (device $(stat -c %d "$mp")), not the filesystem of snapimport's root $ROOT (device $(stat -c %d "$ROOT"))"
if [ "$SI_CONTAINERD_MAJOR" -ge 2 ]; then
  [ "$mp" = "$ROOT" ] || fail "containerd 2.x should report exports.root ($ROOT) as the image filesystem, not $mp"
fi
si_log "after the pull: ImageFsInfo $mp, $used bytes used (du of snapimport's snapshots: $(snap_du))"

si_step "CRI RemoveImage $REF" "$CRI_CLIENT" "$ENDPOINT" remove "$REF"
gone() {
  for _ in $(seq 1 100); do
    [ -z "$(si_backend_list "$SI_SNAPIMPORT_SOCK")" ] && return 0
    sleep 0.1
  done
  si_fail "GC did not remove the image's snapshots from snapimport"
}
si_step "containerd's GC removes the snapshots" gone
dropped() {
  local line used
  for _ in $(seq 1 100); do
    line=$(fsinfo)
    used=${line##* }
    # 2.x drops the snapshotter's entry when it holds nothing; 1.6 reports 0.
    if [ -z "$line" ] || [ "$used" -lt $((1 << 20)) ]; then
      si_log "after RemoveImage: ImageFsInfo '${line:-no entry}'"
      return 0
    fi
    sleep 0.2
  done
  si_fail "ImageFsInfo still reports '$line' after the image was removed"
}
si_step "ImageFsInfo's used bytes drop after the removal" dropped
si_log "PASS: ImageFsInfo names snapimport's filesystem and its used bytes follow du through a pull and a removal"
