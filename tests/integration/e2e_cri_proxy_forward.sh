#!/usr/bin/env bash
# Issue 11: the CRI image-service proxy forwards every ImageService call to containerd and passes
# the answers and the errors through unchanged. Each call is made twice, once at the proxy and once
# straight at containerd, and the two outputs must be the same: ListImages, ImageStatus (present
# and absent), ImageFsInfo, RemoveImage (present and absent), a pull of a tag the registry lacks.
# With containerd stopped the proxy answers UNAVAILABLE (and keeps serving: once containerd is back
# the calls work again).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/import_lib.sh"  # also: root (else exit 77), CRI_CLIENT, fail()

si_init_workdir e2e-cri-proxy-forward
si_step "start a registry on 127.0.0.1" si_start_registry
OCI=$SI_WORK/oci
REF=$SI_REGISTRY/test/forward:v1
si_step "build the three-layer test image" si_build_test_image "$OCI" v1
si_step "push it to $REF" si_push_image "$OCI" v1 "$REF"

PROXY_SOCK=$SI_WORK/cri-proxy.sock
export SI_IMP_EXTRA_TOML="
[cri]
image_service_address = \"$PROXY_SOCK\"
containerd_address = \"$SI_WORK/containerd/containerd.sock\""
si_write_hosts_dir "$SI_REGISTRY"
si_step "start snapimport (CRI proxy on $PROXY_SOCK)" si_imp_start_snapimport
si_step "start containerd $SI_CONTAINERD_VERSION (CRI on, snapimport as snapshotter and content store)" si_imp_start_cri_containerd
PROXY=unix://$PROXY_SOCK
DIRECT=unix://$SI_CONTAINERD_SOCK

# both NAME ARGS...: runs cri_client ARGS at the proxy and at containerd; their output and exit
# status must agree (socket paths aside). Covers malformed references too.
both() {
  local name=$1 rc_p=0 rc_d=0
  shift
  "$CRI_CLIENT" "$PROXY" "$@" >"$SI_WORK/logs/$name.proxy" 2>&1 || rc_p=$?
  "$CRI_CLIENT" "$DIRECT" "$@" >"$SI_WORK/logs/$name.direct" 2>&1 || rc_d=$?
  local norm="s|$PROXY_SOCK|SOCK|g; s|$SI_CONTAINERD_SOCK|SOCK|g"
  if ! diff <(sed "$norm" "$SI_WORK/logs/$name.proxy") <(sed "$norm" "$SI_WORK/logs/$name.direct") >&2 ||
    [ "$rc_p" != "$rc_d" ]; then
    si_fail "$name: the proxy answered differently from containerd (exit $rc_p vs $rc_d, diff above)"
    return 1
  fi
  si_log "$name: same answer through the proxy (exit $rc_p): $(head -c 160 "$SI_WORK/logs/$name.proxy" | tr '\n' ' ')"
}

pull() { "$SNAPIMPORT_BIN" pull --image-endpoint "$PROXY" "$1" >"$SI_WORK/logs/pull.out" 2>&1; }
si_step "pull $REF through the proxy" pull "$REF"
[ "$(si_imp_imported_count)" -eq 3 ] || fail "snapimport imported $(si_imp_imported_count) layers through the proxy, want 3"

both list list
grep -q " $REF\( \|$\)" "$SI_WORK/logs/list.proxy" || fail "ListImages through the proxy does not show $REF"
both status status "$REF"
both status-absent status "$SI_REGISTRY/test/forward:absent"
grep -qx absent "$SI_WORK/logs/status-absent.proxy" || fail "ImageStatus of a missing image is not empty through the proxy"
both status-bad-ref status "Not/A Valid::Reference"
both remove-bad-ref remove "Not/A Valid::Reference"
both fsinfo fsinfo
[ -s "$SI_WORK/logs/fsinfo.proxy" ] || fail "ImageFsInfo through the proxy reports no image filesystem"

missing_pull() {
  ! "$SNAPIMPORT_BIN" pull --image-endpoint "$1" "$SI_REGISTRY/test/forward:absent" >"$2" 2>&1
}
si_step "pull a tag the registry lacks, through the proxy" missing_pull "$PROXY" "$SI_WORK/logs/missing.proxy"
si_step "pull a tag the registry lacks, straight at containerd" missing_pull "$DIRECT" "$SI_WORK/logs/missing.direct"
si_imp_same_pull_output "$SI_WORK/logs/missing.proxy" "$SI_WORK/logs/missing.direct" "$PROXY_SOCK" "$SI_CONTAINERD_SOCK" ||
  fail "the failed pull reads differently through the proxy (above)"
grep -q "not found\|gRPC code 5" "$SI_WORK/logs/missing.proxy" || fail "the failed pull does not say the image was not found"

both remove remove "$REF"
both status-removed status "$REF"
grep -qx absent "$SI_WORK/logs/status-removed.proxy" || fail "$REF is still there after RemoveImage through the proxy"
both remove-absent remove "$SI_REGISTRY/test/forward:absent"

# containerd away: UNAVAILABLE, passed through; the proxy keeps serving.
si_step "stop containerd" si_stop_pid "$SI_CONTAINERD_PID" containerd
rc=0
"$CRI_CLIENT" "$PROXY" list >"$SI_WORK/logs/down.out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "ListImages through the proxy succeeded with containerd stopped"
grep -q "unavailable" "$SI_WORK/logs/down.out" || fail "ListImages with containerd stopped did not answer UNAVAILABLE: $(cat "$SI_WORK/logs/down.out")"
kill -0 "$SI_SNAPIMPORT_PID" || fail "snapimport exited when containerd went away"
si_step "start containerd again" si_imp_start_cri_containerd
ok=0
for _ in $(seq 1 50); do
  if "$CRI_CLIENT" "$PROXY" list >"$SI_WORK/logs/up.out" 2>&1; then ok=1; break; fi
  sleep 0.2
done
[ "$ok" = 1 ] || fail "the proxy does not reach containerd after its restart: $(cat "$SI_WORK/logs/up.out")"
si_print_timings
si_log "PASS: every ImageService call forwarded; answers and errors unchanged; UNAVAILABLE while containerd is away"
