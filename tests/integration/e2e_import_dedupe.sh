#!/usr/bin/env bash
# Importer acceptance, issue 6 item 2: one image, pushed under two tags, pulled through CRI under
# both tags (namespace k8s.io) and with containerd's client in a second namespace (CRI labels added
# by snapshotters.AppendInfoHandlerWrapper, go/nspull), has its three layers imported once: three
# `imported layer` log lines, three import jobs started and completed, three committed snapshots in
# snapimport, no layer applied by containerd. Containers run from both namespaces' images.
# Then a second image on the same base is pulled at the same moment in three namespaces (CRI and
# nspull twice): its three new layers are fetched and imported once, with no duplicate snapshot.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/import_lib.sh"  # also: root (else exit 77), CRI_CLIENT, fail()

si_init_workdir e2e-import-dedupe
NSPULL=$SI_WORK/nspull
si_step "build nspull (Go, GOPATH mode)" si_imp_build_nspull "$NSPULL"
si_step "start a registry on 127.0.0.1" si_start_registry
OCI=$SI_WORK/oci
REPO=test/dedupe
REF_A=$SI_REGISTRY/$REPO:a
REF_B=$SI_REGISTRY/$REPO:b
si_step "build the three-layer test image" si_build_test_image "$OCI" a
si_step "push it as $REF_A" si_push_image "$OCI" a "$REF_A"
si_step "push it as $REF_B" si_push_image "$OCI" a "$REF_B"
mapfile -t LAYERS < <(jq -r ".layers[].digest" "$(si_image_manifest "$OCI" a)")
[ "${#LAYERS[@]}" -eq 3 ] || fail "expected 3 layers, got ${#LAYERS[@]}"
mapfile -t CHAIN < <(si_chain_ids "$OCI" a)

si_write_hosts_dir "$SI_REGISTRY"
si_step "start snapimport" si_imp_start_snapimport
si_step "start containerd (CRI on, snapimport as snapshotter and content store)" si_imp_start_cri_containerd
ENDPOINT=unix://$SI_CONTAINERD_SOCK

cri_pull() {
  "$SNAPIMPORT_BIN" pull --image-endpoint "$ENDPOINT" "$1" | tee "$SI_WORK/logs/pull-$2.out"
  grep -q "^1 pulled, 0 failed" "$SI_WORK/logs/pull-$2.out" || si_fail "snapimport pull $1 did not report success"
}
si_step "CRI pull $REF_A (k8s.io)" cri_pull "$REF_A" a
after_first=$(si_imp_imported_count)
[ "$after_first" -eq 3 ] || fail "the first pull imported $after_first layers, want 3"
for l in "${LAYERS[@]}"; do
  got=$(si_imp_layer_status "$l")
  [ "$got" = "done registry prepare" ] ||
    fail "snapimport status shows layer $l as '$got' after the first pull, want 'done registry prepare'"
done
si_step "CRI pull $REF_B (k8s.io, second tag)" cri_pull "$REF_B" b

NS2=second
ns_pull() {
  "$NSPULL" -address "$SI_CONTAINERD_SOCK" -namespace "$NS2" -snapshotter snapimport -plain-http "$1" \
    >"$SI_WORK/logs/nspull.out" 2>&1 || { cat "$SI_WORK/logs/nspull.out" >&2; return 1; }
}
si_step "containerd client pull $REF_B in namespace $NS2 (CRI labels)" ns_pull "$REF_B"
si_step "containerd client pull $REF_A in namespace $NS2 (CRI labels)" ns_pull "$REF_A"
# The second namespace's Prepares reached the importer with their labels and were answered from
# the committed chain (no fallback, no new import).
ns2_imported=$(grep 'msg="import outcome"' "$SI_SNAPIMPORT_LOG" | grep -F "key=\"$NS2/" | grep -c 'outcome=imported' || true)
[ "$ns2_imported" -eq 3 ] || fail "namespace $NS2's layer Prepares answered AlreadyExists $ns2_imported times, want 3"
no_labels=$(si_imp_metric snapimport_fallbacks_total 'reason="no_labels"')
[ "$no_labels" -eq 0 ] || fail "$no_labels layer Prepares came without CRI labels"

# --- imported once ---------------------------------------------------------------------------------
imported=$(si_imp_imported_count)
started=$(si_imp_metric snapimport_imports_started_total)
completed=$(si_imp_metric snapimport_imports_completed_total)
applied=$(si_imp_applied_count)
si_log "after 4 pulls (2 tags x 2 namespaces): imported-layer lines=$imported, imports started=$started, completed=$completed, containerd diff applied=$applied"
[ "$imported" -eq 3 ] || fail "snapimport imported $imported layers over four pulls of one image, want 3"
[ "$started" -eq 3 ] || fail "snapimport started $started import jobs, want 3"
[ "$completed" -eq 3 ] || fail "snapimport completed $completed imports, want 3"
[ "$applied" -eq 0 ] || fail "containerd applied $applied layers itself"
bad_fallbacks=$(si_imp_metrics | awk '/^snapimport_fallbacks_total\{/ && $0 !~ /no_labels/ && $2 != 0')
[ -z "$bad_fallbacks" ] || fail "unexpected fallbacks: $bad_fallbacks"
for l in "${LAYERS[@]}"; do
  n=$(si_imp_blob_gets "$l")
  [ "$n" -eq 1 ] || fail "layer $l was fetched $n times from the registry, want 1"
  n=$(si_imp_blob_gets "$l" snapimport/)
  [ "$n" -eq 1 ] || fail "layer $l was fetched $n times by snapimport, want 1"
done
si_log "each layer blob fetched once from the registry"

backend=$(si_backend_list "$SI_SNAPIMPORT_SOCK")
printf '%s\n' "$backend" | sed 's/^/    snapimport: /' >&2
committed=$(awk -F'\t' '$3 == "committed"' <<<"$backend" | wc -l)
[ "$committed" -eq 3 ] || fail "snapimport holds $committed committed snapshots, want the 3 of one chain"
want=$(printf '%s\n' "${CHAIN[@]}" | sort)
for ns in k8s.io "$NS2"; do
  snaps=$(si_ctr -n "$ns" snapshots --snapshotter snapimport ls | awk 'NR > 1 { print $1 }' | sort)
  [ "$snaps" = "$want" ] || fail "namespace $ns has snapshots '$snaps', want the chain '$want'"
done
si_log "both namespaces see the same 3-snapshot chain, backed by 3 snapshots in snapimport"

# --- both namespaces' images resolve and run ---------------------------------------------------------
for ns in k8s.io "$NS2"; do
  imgs=$(si_ctr -n "$ns" images ls -q)
  for r in "$REF_A" "$REF_B"; do
    grep -qx "$r" <<<"$imgs" || fail "namespace $ns does not list $r: $imgs"
  done
done
"$CRI_CLIENT" "$ENDPOINT" list >"$SI_WORK/logs/images.out"
grep -q " $REF_B\( \|$\)" "$SI_WORK/logs/images.out" || fail "CRI ListImages does not show $REF_B"
run() {
  local ns=$1 ref=$2 id=$3
  si_ctr_run "$ns" --rm --snapshotter snapimport "$ref" "$id" /bin/sh -c 'cat /top-marker.txt' \
    >"$SI_WORK/logs/run-$id.out" 2>"$SI_WORK/logs/run-$id.err" || { cat "$SI_WORK/logs/run-$id.err" >&2; return 1; }
  grep -qx "$SI_IMG_MARKER" "$SI_WORK/logs/run-$id.out" || si_fail "container $id does not see the top layer"
}
si_step "ctr run $REF_B in k8s.io" run k8s.io "$REF_B" dedupe-k8s
si_step "ctr run $REF_A in $NS2" run "$NS2" "$REF_A" dedupe-second
imported=$(si_imp_imported_count)
[ "$imported" -eq 3 ] || fail "running containers made snapimport import again ($imported layers)"

# --- at the same time in three namespaces -------------------------------------------------------------
# A second image: the same base, two layers of many files (their commits take a while: usage,
# implicit directories) and a small top layer, pulled at once through CRI (k8s.io) and by nspull in
# two more namespaces. Each new layer must still be fetched once and imported once: a pull that
# finds a layer being committed by another namespace's pull waits for that commit.
OCI2=$OCI
REF_C=$SI_REGISTRY/test/dedupe-concurrent:v1
build_second() {
  umoci tag --image "$OCI:a" c
  si_imp_add_layer "$OCI2" c bulk-1 6000
  si_imp_add_layer "$OCI2" c bulk-2 6000
  si_imp_add_layer "$OCI2" c top
  umoci gc --layout "$OCI2"
}
si_step "build a second image: the base, two layers of 6000 files, a top layer" build_second
si_step "push it as $REF_C" si_push_image "$OCI2" c "$REF_C"
mapfile -t LAYERS2 < <(jq -r ".layers[].digest" "$(si_image_manifest "$OCI2" c)")
if [ "${LAYERS2[0]}" != "${LAYERS[0]}" ] || [ "${LAYERS2[2]}" != "${LAYERS[2]}" ]; then
  fail "the second image does not share the first one's base layers"
fi
concurrent_pulls() {
  local rc=0 p1 p2 p3
  "$SNAPIMPORT_BIN" pull --image-endpoint "$ENDPOINT" "$REF_C" >"$SI_WORK/logs/pull-c.out" 2>&1 &
  p1=$!
  "$NSPULL" -address "$SI_CONTAINERD_SOCK" -namespace "$NS2" -plain-http "$REF_C" >"$SI_WORK/logs/nspull-c2.out" 2>&1 &
  p2=$!
  "$NSPULL" -address "$SI_CONTAINERD_SOCK" -namespace third -plain-http "$REF_C" >"$SI_WORK/logs/nspull-c3.out" 2>&1 &
  p3=$!
  wait "$p1" || { rc=1; si_warn "CRI pull failed: $(cat "$SI_WORK/logs/pull-c.out")"; }
  wait "$p2" || { rc=1; si_warn "nspull in $NS2 failed: $(cat "$SI_WORK/logs/nspull-c2.out")"; }
  wait "$p3" || { rc=1; si_warn "nspull in third failed: $(cat "$SI_WORK/logs/nspull-c3.out")"; }
  return "$rc"
}
si_step "pull $REF_C at once in k8s.io (CRI), $NS2 and third (nspull)" concurrent_pulls
imported=$(si_imp_imported_count)
started=$(si_imp_metric snapimport_imports_started_total)
applied=$(si_imp_applied_count)
si_log "after the concurrent pulls: imported-layer lines=$imported, imports started=$started, containerd diff applied=$applied"
for l in "${LAYERS2[@]}"; do
  n=$(si_imp_blob_gets "$l")
  [ "$n" -eq 1 ] || fail "layer $l was fetched $n times from the registry, want 1"
done
[ "$started" -eq 6 ] || fail "snapimport started $started import jobs in all, want 6 (3 + the 3 new layers)"
[ "$imported" -eq 6 ] || fail "snapimport imported $imported layers in all, want 6 (3 + the 3 new layers)"
[ "$applied" -eq 0 ] || fail "containerd applied $applied layers itself"
backend=$(si_backend_list "$SI_SNAPIMPORT_SOCK" | awk -F'\t' '$3 == "committed" { print $1 }')
[ "$(wc -l <<<"$backend")" -eq 6 ] || fail "snapimport holds $(wc -l <<<"$backend") committed snapshots, want 6: $backend"
mapfile -t CHAIN2 < <(si_chain_ids "$OCI2" c)
want2=$(printf '%s\n' "${CHAIN2[@]}" | sort)
for ns in k8s.io "$NS2" third; do
  snaps=$(si_ctr -n "$ns" snapshots --snapshotter snapimport ls | awk 'NR > 1 { print $1 }' | sort)
  [ "$(grep -cxF -f <(echo "$want2") <<<"$snaps" || true)" -eq 6 ] ||
    fail "namespace $ns lacks part of the chain of $REF_C: has '$snaps'"
done
si_step "ctr run $REF_C in third" run third "$REF_C" dedupe-third
si_print_timings
si_log "PASS: one image, two tags, two namespaces: 3 layers imported once, both namespaces run it; three concurrent pulls in three namespaces import each new layer once"
