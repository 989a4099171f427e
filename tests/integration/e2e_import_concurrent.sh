#!/usr/bin/env bash
# Importer acceptance, issue 6 item 4: eight concurrent CRI pulls (`snapimport pull --parallel 8`)
# of four images that share their four base layers (the three-layer test image plus a layer of
# $BULK_FILES small files) and have one layer of their own each (each image in its own repository,
# under two tags) all succeed, and each of the eight distinct layers is fetched from the registry
# once (registry access log, per digest) and imported once (snapimport_imports_started_total == 8,
# eight `imported layer` lines, eight committed snapshots); containerd applies none.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/import_lib.sh"  # also: root (else exit 77), CRI_CLIENT, fail()

si_init_workdir e2e-import-concurrent
BULK_FILES=${BULK_FILES:-6000}
si_step "start a registry on 127.0.0.1" si_start_registry
OCI=$SI_WORK/oci
si_step "build the three-layer base image" si_build_test_image "$OCI" base
build_images() {
  local i
  # A fourth shared layer with many files: committing it takes a while (usage, implicit dirs),
  # which is when concurrent pulls of the same layer race for it.
  si_imp_add_layer "$OCI" base bulk "$BULK_FILES"
  for i in 1 2 3 4; do
    umoci tag --image "$OCI:base" "img$i"
    si_imp_add_layer "$OCI" "img$i" "own-$i"
  done
  umoci gc --layout "$OCI"
}
si_step "build four images on a shared 4-layer base ($BULK_FILES files in one layer), one own layer each" build_images
REFS=()
push_images() {
  local i t ref
  for i in 1 2 3 4; do
    for t in x y; do
      ref=$SI_REGISTRY/test/shared$i:$t
      si_push_image "$OCI" "img$i" "$ref"
      REFS+=("$ref")
    done
  done
}
si_step "push each image to its own repository under two tags (8 references)" push_images
declare -A DISTINCT=()
for i in 1 2 3 4; do
  for d in $(jq -r ".layers[].digest" "$(si_image_manifest "$OCI" "img$i")"); do DISTINCT[$d]=1; done
done
[ "${#DISTINCT[@]}" -eq 8 ] || fail "expected 8 distinct layers over the four images, got ${#DISTINCT[@]}"

si_write_hosts_dir "$SI_REGISTRY"
si_step "start snapimport" si_imp_start_snapimport
si_step "start containerd (CRI on, snapimport as snapshotter and content store)" si_imp_start_cri_containerd
ENDPOINT=unix://$SI_CONTAINERD_SOCK

pull_all() {
  local rc=0
  "$SNAPIMPORT_BIN" pull --image-endpoint "$ENDPOINT" --parallel 8 --timeout 300 "${REFS[@]}" \
    >"$SI_WORK/logs/pull.out" 2>&1 || rc=$?
  sed 's/^/    /' "$SI_WORK/logs/pull.out" >&2
  [ "$rc" -eq 0 ] || si_fail "snapimport pull exited $rc"
}
si_step "8 concurrent CRI pulls (snapimport pull --parallel 8)" pull_all
grep -q "^8 pulled, 0 failed" "$SI_WORK/logs/pull.out" || fail "not all 8 pulls succeeded"

# --- each distinct layer fetched once and imported once ---------------------------------------------
report=""
bad=0
for d in "${!DISTINCT[@]}"; do
  all=$(si_imp_blob_gets "$d")
  ours=$(si_imp_blob_gets "$d" snapimport/)
  report+="    ${d:0:19}  GETs: $all (snapimport: $ours)"$'\n'
  { [ "$all" -eq 1 ] && [ "$ours" -eq 1 ]; } || bad=1
done
printf '%s' "$report" >&2
[ "$bad" -eq 0 ] || fail "some layer blob was not fetched exactly once (see above)"
started=$(si_imp_metric snapimport_imports_started_total)
completed=$(si_imp_metric snapimport_imports_completed_total)
imported=$(si_imp_imported_count)
applied=$(si_imp_applied_count)
si_log "imports started=$started completed=$completed, imported-layer lines=$imported, containerd diff applied=$applied"
[ "$started" -eq 8 ] || fail "snapimport started $started import jobs, want 8 (one per distinct layer)"
[ "$completed" -eq 8 ] || fail "snapimport completed $completed imports, want 8"
[ "$imported" -eq 8 ] || fail "snapimport logged $imported imported layers, want 8"
[ "$applied" -eq 0 ] || fail "containerd applied $applied layers itself"
bad_fallbacks=$(si_imp_metrics | awk '/^snapimport_fallbacks_total\{/ && $0 !~ /no_labels/ && $2 != 0')
[ -z "$bad_fallbacks" ] || fail "unexpected fallbacks: $bad_fallbacks"
committed=$(si_backend_list "$SI_SNAPIMPORT_SOCK" | awk -F'\t' '$3 == "committed"' | wc -l)
[ "$committed" -eq 8 ] || fail "snapimport holds $committed committed snapshots, want 8 (4 shared + 4 own)"

# --- every image is listed and runs -------------------------------------------------------------------
"$CRI_CLIENT" "$ENDPOINT" list >"$SI_WORK/logs/images.out"
for r in "${REFS[@]}"; do
  grep -q " $r\( \|$\)" "$SI_WORK/logs/images.out" || fail "CRI ListImages does not show $r"
done
run() {
  local i=$1 out=$SI_WORK/logs/run-$1.out
  si_ctr_run k8s.io --rm --snapshotter snapimport "$SI_REGISTRY/test/shared$i:y" "conc-$i" \
    /bin/sh -c 'cat /top-marker.txt /layers/*.txt' >"$out" 2>&1 || { cat "$out" >&2; return 1; }
  grep -qx "$SI_IMG_MARKER" "$out" || si_fail "image $i: base layers not visible" || return 1
  grep -qx "layer own-$i" "$out" || si_fail "image $i: its own layer is not visible" || return 1
  [ "$(grep -c '^layer own-' "$out")" -eq 1 ] || si_fail "image $i sees another image's layer: $(cat "$out")"
}
for i in 1 4; do si_step "ctr run image $i" run "$i"; done
si_print_timings
si_log "PASS: 8 concurrent CRI pulls of 4 images sharing base layers; 8 distinct layers, each fetched and imported once"
