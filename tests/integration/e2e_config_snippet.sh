#!/usr/bin/env bash
# The operator's path on a containerd 2.1 node (or 1.6/1.7, SI_CONTAINERD_VERSION): the output of
# `snapimport config containerd --version V` for this node's sockets is used VERBATIM as the
# containerd config; the test adds only what makes containerd private to it (root, state and its
# own socket paths, all outside the snippet's tables). A CRI pull must then import every layer
# (containerd applies none and fetches no layer blob) and a container must run.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/import_lib.sh"  # also: root (else exit 77), CRI_CLIENT, fail()

si_init_workdir e2e-config-snippet
si_step "start a registry on 127.0.0.1" si_start_registry
OCI=$SI_WORK/oci
REF=$SI_REGISTRY/test/snippet:v1
si_step "build the three-layer test image" si_build_test_image "$OCI" v1
si_step "push it to $REF" si_push_image "$OCI" v1 "$REF"
mapfile -t LAYERS < <(jq -r ".layers[].digest" "$(si_image_manifest "$OCI" v1)")

SI_HOSTS_DIR=$SI_WORK/certs.d
si_write_hosts_dir "$SI_REGISTRY"
si_step "start snapimport" si_imp_start_snapimport

# The snippet, as an operator gets it for this node's paths.
case "$SI_CONTAINERD_VERSION" in 2.*) snippet_version=2.1 ;; *) snippet_version=$SI_CONTAINERD_VERSION ;; esac
SNIPPET=$SI_WORK/snippet.toml
"$SNAPIMPORT_BIN" config containerd --version "$snippet_version" --address "$SI_SNAPIMPORT_SOCK" \
  --root "$SI_SNAPIMPORT_ROOT" --hosts-dir "$SI_HOSTS_DIR" >"$SNIPPET"
sed 's/^/    snippet: /' "$SNIPPET" >&2

si_containerd_header >"$SI_WORK/private.toml" # (not in a subshell: it sets SI_CONTAINERD_CONFIG)
header=$(cat "$SI_WORK/private.toml")
{
  echo "# private parts (this test's containerd), top-level keys"
  sed '/^#--tables--$/,$d' <<<"$header"
  echo "# --- snapimport config containerd --version $snippet_version, verbatim ---"
  cat "$SNIPPET"
  echo "# --- private tables ---"
  sed '1,/^#--tables--$/d' <<<"$header"
} >"$SI_CONTAINERD_CONFIG"
# CRI wants this directory for ImageFsInfo on 1.x.
mkdir -p "$SI_WORK/containerd/root/io.containerd.snapshotter.v1.snapimport"
si_step "start containerd $SI_CONTAINERD_VERSION with the snippet" si_launch_containerd

ENDPOINT=unix://$SI_CONTAINERD_SOCK
pull() { "$SNAPIMPORT_BIN" pull --image-endpoint "$ENDPOINT" "$REF" | tee "$SI_WORK/logs/pull.out"; }
si_step "snapimport pull $REF (CRI PullImage)" pull
grep -q "^1 pulled, 0 failed" "$SI_WORK/logs/pull.out" || fail "snapimport pull did not report success"

imported=$(si_imp_imported_count)
applied=$(si_imp_applied_count)
[ "$imported" -eq 3 ] && [ "$applied" -eq 0 ] ||
  fail "with the snippet, snapimport imported $imported layers and containerd applied $applied; want 3 and 0"
content=$(si_ctr -n k8s.io content ls -q)
for l in "${LAYERS[@]}"; do
  if grep -qx "$l" <<<"$content"; then fail "containerd fetched layer blob $l into the content store"; fi
done
if [ "$SI_CONTAINERD_MAJOR" -ge 2 ]; then
  grep -q 'PullImage .* with snapshotter snapimport using transfer service' "$SI_CONTAINERD_LOG" ||
    fail "containerd $SI_CONTAINERD_VERSION did not pull through its transfer service with the snippet"
fi
si_log "the snippet gives a CRI import: 3 layers imported, none applied by containerd"

run() {
  si_ctr_run k8s.io --rm --snapshotter snapimport "$REF" snippet-1 /bin/cat /top-marker.txt \
    >"$SI_WORK/logs/run.out" 2>"$SI_WORK/logs/run.err" || { cat "$SI_WORK/logs/run.err" >&2; return 1; }
}
si_step "ctr run the imported image" run
grep -qx "$SI_IMG_MARKER" "$SI_WORK/logs/run.out" || fail "the container did not print the top-layer marker"

# `ctr images pull` of an image with one more layer: containerd applies that layer itself on 1.6;
# on 1.7 and 2.x the snippet puts snapimport's differ first and containerd applies none.
OCI2=$SI_WORK/oci2
cp -a "$OCI" "$OCI2"
si_step "add a layer for the ctr pull" si_imp_add_layer "$OCI2" v1 ctrlayer
REF2=$SI_REGISTRY/test/snippet-ctr:v1
si_step "push it to $REF2" si_push_image "$OCI2" v1 "$REF2"
before=$(si_imp_applied_count)
ctr_pull() {
  si_ctr -n k8s.io images pull --snapshotter snapimport "$REF2" >"$SI_WORK/logs/ctr-pull.out" 2>&1 ||
    { tail -n 20 "$SI_WORK/logs/ctr-pull.out" >&2; return 1; }
}
si_step "ctr images pull $REF2" ctr_pull
ctr_applied=$(( $(si_imp_applied_count) - before ))
by_diff=$(grep -c 'msg="applied layer"' "$SI_SNAPIMPORT_LOG" || true)
si_log "ctr pull: containerd applied $ctr_applied layers, snapimport's diff service $by_diff"
if [ "$SI_CONTAINERD_VERSION" = 1.6 ]; then
  [ "$ctr_applied" -eq 1 ] || fail "containerd 1.6 applied $ctr_applied layers of the ctr pull, want 1 (its own path)"
else
  [ "$ctr_applied" -eq 0 ] || fail "with the snippet, containerd $SI_CONTAINERD_VERSION applied $ctr_applied layers of the ctr pull itself, want 0"
fi
run2() {
  si_ctr_run k8s.io --rm --snapshotter snapimport "$REF2" snippet-2 /bin/cat /layers/ctrlayer.txt \
    >"$SI_WORK/logs/run2.out" 2>"$SI_WORK/logs/run2.err" || { cat "$SI_WORK/logs/run2.err" >&2; return 1; }
}
si_step "ctr run the ctr-pulled image" run2
grep -qx "layer ctrlayer" "$SI_WORK/logs/run2.out" || fail "the ctr-pulled image's top layer is wrong in the container"

si_log "PASS: snapimport config containerd --version $snippet_version works verbatim on containerd $SI_CONTAINERD_VERSION"
