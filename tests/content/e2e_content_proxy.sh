#!/usr/bin/env bash
# Acceptance test (issue 3): a real containerd 1.6 with its built-in content store disabled uses
# snapimport for both content and snapshots, over one socket. Pull, `ctr run` and `ctr content ls`
# work and every blob lives in snapimport's store; after `ctr images rm`, containerd's GC deletes
# the blobs (and snapshots) it no longer references; a re-pull works.
#
#   SNAPIMPORT_BIN=build/cli/snapimport tests/content/e2e_content_proxy.sh
#
# Needs root. KEEP=1 leaves everything running for a look afterwards.
set -euo pipefail

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"

if [ "$(id -u)" -ne 0 ]; then
  echo "e2e-content-proxy: SKIP: needs root (mounts, containerd, runc)" >&2
  exit 77
fi

NS=test
SI_NAMESPACE=$NS
TAG=v1
REPO=snapimport/content-proxy
CONTENT_PLUGIN=snapimport-content

fail() {
  printf '\n[%s] e2e-content-proxy FAILED: %s\n' "$(si_ts)" "$*" >&2
  si_dump_logs 60
  exit 1
}

si_require containerd ctr runc docker-registry skopeo umoci jq curl
[ -n "${SNAPIMPORT_BIN:-}" ] || fail "SNAPIMPORT_BIN is not set (ctest sets it; by hand: SNAPIMPORT_BIN=build/cli/snapimport)"
[ -x "$SNAPIMPORT_BIN" ] || fail "SNAPIMPORT_BIN=$SNAPIMPORT_BIN is not executable"

si_init_workdir snapimport-content-proxy
OCI=$SI_WORK/oci

si_step "start a local registry" si_start_registry
REF=$SI_REGISTRY/$REPO:$TAG
si_step "build the three-layer test image with umoci" si_build_test_image "$OCI" "$TAG"
si_step "push the image to $REF" si_push_image "$OCI" "$TAG" "$REF"

si_step "start snapimport ($SNAPIMPORT_BIN)" si_start_snapimport
BLOBS=$SI_SNAPIMPORT_ROOT/content/blobs/sha256
INGESTS=$SI_SNAPIMPORT_ROOT/content/ingest

# This test is about containerd's own path through snapimport's content store: on 2.1 the
# transfer service would otherwise hand snapimport the layer labels and snapimport would import the
# layers itself (no layer blob would reach the content store).
export SI_CONTAINERD_REMOTE_ANNOTATIONS=false
# containerd 1.6 takes the first content plugin it finds, so the built-in one must go.
SI_CONTAINERD_DISABLED_EXTRA="io.containerd.content.v1.content"
SI_CONTAINERD_EXTRA_CONFIG="[proxy_plugins.$CONTENT_PLUGIN]
  type = \"content\"
  address = \"$SI_SNAPIMPORT_SOCK\""
si_step "start containerd with snapimport as content store and snapshotter" \
  si_start_containerd "$SI_SNAPIMPORT_SOCK"
status=$(si_containerd_plugin_status io.containerd.content.v1 "$CONTENT_PLUGIN")
[ "$status" = ok ] || fail "containerd lists the $CONTENT_PLUGIN content plugin as '${status:-missing}'"
builtin=$(si_containerd_plugin_status io.containerd.content.v1 content)
[ -z "$builtin" ] || [ "$builtin" = skip ] || fail "containerd's built-in content store is '$builtin', not disabled"

pull() {
  si_ctr -n "$NS" images pull --plain-http --snapshotter snapimport "$REF" >"$SI_WORK/logs/pull.out" 2>&1 || {
    tail -n 20 "$SI_WORK/logs/pull.out" >&2
    si_fail "ctr images pull failed"
  }
}

# Every digest ctr content ls shows is a file in snapimport's blob store, and vice versa.
check_content() {
  local listed stored
  listed=$(si_ctr -n "$NS" content ls -q | sort) || return 1
  stored=$(find "$BLOBS" -type f -printf 'sha256:%f\n' | sort)
  printf '%s\n' "$listed" | sed 's/^/    ctr content ls: /' >&2
  [ "$(printf '%s\n' "$listed" | grep -c .)" -ge 5 ] ||
    si_fail "ctr content ls shows $(printf '%s\n' "$listed" | grep -c .) blobs; want index/manifest, config and 3 layers" || return 1
  [ "$listed" = "$stored" ] ||
    si_fail "ctr content ls and snapimport's blobs/sha256 differ:
$(diff <(printf '%s\n' "$listed") <(printf '%s\n' "$stored"))" || return 1
  local f
  for f in "$BLOBS"/*; do
    [ "$(sha256sum "$f" | cut -d' ' -f1)" = "$(basename "$f")" ] || si_fail "blob $f does not hash to its name" || return 1
  done
  [ -z "$(ls -A "$INGESTS")" ] || si_fail "ingests left behind after the pull: $(ls -A "$INGESTS")"
}

run_container() {
  si_ctr_run "$NS" --rm --snapshotter snapimport "$REF" ctr-content-1 /bin/cat /top-marker.txt \
    >"$SI_WORK/logs/run.out" 2>"$SI_WORK/logs/run.err" || {
    cat "$SI_WORK/logs/run.out" "$SI_WORK/logs/run.err" >&2
    si_fail "ctr run failed"
  }
  [ "$(cat "$SI_WORK/logs/run.out")" = "$SI_IMG_MARKER" ] ||
    si_fail "container printed '$(cat "$SI_WORK/logs/run.out")', want '$SI_IMG_MARKER'"
}

check_gc() {
  local left
  left=$(si_ctr -n "$NS" content ls -q)
  [ -z "$left" ] || si_fail "ctr content ls still shows: $left" || return 1
  left=$(find "$BLOBS" -type f -printf '%f ')
  [ -z "$left" ] || si_fail "containerd's GC left blobs in snapimport's store: $left" || return 1
  left=$(si_ctr -n "$NS" snapshots --snapshotter snapimport ls | awk 'NR > 1 { print $1 }')
  [ -z "$left" ] || si_fail "containerd still lists snapshots: $left"
}

si_step "ctr images pull --snapshotter snapimport $REF (content through snapimport)" pull
si_step "ctr content ls matches snapimport's blob store, each blob verified" check_content
si_step "ctr run prints the top layer's marker" run_container
si_step "ctr images rm --sync $REF (synchronous GC)" si_ctr -n "$NS" images rm --sync "$REF"
si_step "GC removed every blob and snapshot from snapimport" check_gc
si_step "re-pull $REF" pull
si_step "ctr content ls matches snapimport's blob store again" check_content
si_step "ctr run after the re-pull" run_container

si_print_timings
si_log "e2e-content-proxy PASSED"
