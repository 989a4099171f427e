#!/usr/bin/env bash
# Acceptance test: a real containerd (1.6, 1.7 or 2.1: SI_CONTAINERD_VERSION) pulls a locally built three-layer image from a local
# registry into snapimport (proxy snapshotter), runs a container from it, and the whiteout and
# opaque directory of the top layer are honoured. Then the image is removed and containerd's GC
# must remove the snapshots from snapimport as well.
#
#   SNAPIMPORT_BIN=build/cli/snapimport tests/integration/e2e_containerd.sh
#
# Needs root. KEEP=1 leaves everything running for a look afterwards. SI_E2E_SNAPSHOTTER=overlayfs
# runs the same checks against containerd's built-in snapshotter (to check the harness itself).
set -euo pipefail

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [ "$(id -u)" -ne 0 ]; then
  echo "e2e-containerd: SKIP: needs root (mounts, containerd, runc)" >&2
  exit 77
fi

SNAPSHOTTER=${SI_E2E_SNAPSHOTTER:-snapimport}
NS="test"
SI_NAMESPACE=$NS
TAG=v1
REPO=snapimport/e2e
CONTAINER=ctr-test-1

# Failed steps end the script through set -e; lib.sh's EXIT trap then names the step and dumps
# the logs. Checks outside steps call fail.
fail() {
  printf '\n[%s] e2e-containerd FAILED: %s\n' "$(si_ts)" "$*" >&2
  si_dump_logs 60
  exit 1
}

si_require containerd ctr runc docker-registry skopeo umoci jq curl
if [ "$SNAPSHOTTER" = snapimport ]; then
  [ -n "${SNAPIMPORT_BIN:-}" ] || fail "SNAPIMPORT_BIN is not set (ctest sets it; by hand: SNAPIMPORT_BIN=build/cli/snapimport)"
  [ -x "$SNAPIMPORT_BIN" ] || fail "SNAPIMPORT_BIN=$SNAPIMPORT_BIN is not executable"
fi

si_init_workdir snapimport-e2e
OCI=$SI_WORK/oci

si_step "start a local registry" si_start_registry
REF=$SI_REGISTRY/$REPO:$TAG

si_step "build the three-layer test image with umoci" si_build_test_image "$OCI" "$TAG"
si_step "check the layer tarballs hold the .wh. whiteout and the .wh..wh..opq marker" \
  si_verify_test_image "$OCI" "$TAG"
mapfile -t CHAIN < <(si_chain_ids "$OCI" "$TAG")
[ "${#CHAIN[@]}" -eq 3 ] || fail "expected 3 chain IDs, got ${#CHAIN[@]}"
si_log "chain IDs: ${CHAIN[*]}"

si_step "push the image to $REF" si_push_image "$OCI" "$TAG" "$REF"
si_registry_has "$REPO" "$TAG" || fail "registry does not serve $REPO:$TAG after the push"

if [ "$SNAPSHOTTER" = snapimport ]; then
  si_step "start snapimport ($SNAPIMPORT_BIN)" si_start_snapimport
  si_step "start containerd with [proxy_plugins.snapimport]" si_start_containerd "$SI_SNAPIMPORT_SOCK"
  status=$(si_containerd_plugin_status io.containerd.snapshotter.v1 snapimport)
  [ "$status" = ok ] || fail "containerd lists the snapimport snapshotter plugin as '${status:-missing}'"
else
  si_step "start containerd (no proxy plugin)" si_start_containerd ""
fi

# --- pull ----------------------------------------------------------------------------------------
pull() {
  si_ctr -n "$NS" images pull --plain-http --snapshotter "$SNAPSHOTTER" "$REF" >"$SI_WORK/logs/pull.out" 2>&1 || {
    tail -n 20 "$SI_WORK/logs/pull.out" >&2
    si_fail "ctr images pull failed"
  }
}
si_step "ctr images pull --plain-http --snapshotter $SNAPSHOTTER $REF" pull

# Who did the work: `ctr images pull` on 1.6 and 1.7 (local pull, no labels) leaves every layer to
# containerd; on 2.1 the transfer service passes the CRI layer labels (the proxy's exports ask
# for them) and snapimport imports every layer itself.
if [ "$SNAPSHOTTER" = snapimport ]; then
  imported=$(grep -c 'msg="imported layer"' "$SI_SNAPIMPORT_LOG" || true)
  applied=$(grep -c 'diff applied' "$SI_CONTAINERD_LOG" || true)
  if [ "$SI_CONTAINERD_MAJOR" -ge 2 ]; then want_imported=3 want_applied=0; else want_imported=0 want_applied=3; fi
  [ "$imported" = "$want_imported" ] && [ "$applied" = "$want_applied" ] ||
    fail "containerd $SI_CONTAINERD_VERSION ctr pull: snapimport imported $imported and containerd applied $applied layers; want $want_imported and $want_applied"
  si_log "ctr pull on containerd $SI_CONTAINERD_VERSION: snapimport imported $imported layers, containerd applied $applied"
fi
si_ctr -n "$NS" images ls -q | grep -qxF "$REF" || fail "image $REF is not listed after the pull"

# --- committed chain, as containerd and as the snapshotter itself see it ----------------------------
# ctr snapshots ls prints KEY PARENT KIND.
check_chain() {
  local out
  out=$(si_ctr -n "$NS" snapshots --snapshotter "$SNAPSHOTTER" ls) || return 1
  printf '%s\n' "$out" >&2
  local i parent kind line
  for i in 0 1 2; do
    line=$(printf '%s\n' "$out" | awk -v k="${CHAIN[$i]}" '$1 == k')
    [ -n "$line" ] || si_fail "snapshot ${CHAIN[$i]} (layer $((i + 1))) is missing from ctr snapshots ls" || return 1
    if [ "$i" -eq 0 ]; then
      # No parent: the line has only KEY and KIND.
      parent=$(printf '%s\n' "$line" | awk 'NF == 3 { print $2 }')
    else
      parent=$(printf '%s\n' "$line" | awk '{ print $2 }')
    fi
    kind=$(printf '%s\n' "$line" | awk '{ print $NF }')
    [ "$kind" = Committed ] || si_fail "snapshot ${CHAIN[$i]} is '$kind', not Committed" || return 1
    local want=""
    [ "$i" -gt 0 ] && want=${CHAIN[$((i - 1))]}
    [ "$parent" = "$want" ] || si_fail "snapshot ${CHAIN[$i]} has parent '$parent', want '$want'" || return 1
  done
}
si_step "ctr snapshots ls shows the committed chain of 3 layers" check_chain

# snapimport's own view, over gRPC on its socket, with no containerd in between. Backend names are
# <namespace>/<seq>/<chainID>, so look them up by chainID suffix. With SI_E2E_SNAPSHOTTER=overlayfs
# the same code asks containerd's snapshot service instead (names are then the bare chainIDs).
backend_list() {
  if [ "$SNAPSHOTTER" = snapimport ]; then
    si_backend_list "$SI_SNAPIMPORT_SOCK"
  else
    si_backend_list "$SI_CONTAINERD_SOCK" "$SNAPSHOTTER" "$NS"
  fi
}
# awk: exit 0 when a name is the chainID c or ends in /c.
NAME_IS_CHAIN='function is_chain(n, c) { return n == c || substr(n, length(n) - length(c)) == "/" c }'
check_backend_chain() {
  local out i name parent kind prev=""
  out=$(backend_list) || return 1
  printf '%s\n' "$out" | sed 's/^/    backend: /' >&2
  for i in 0 1 2; do
    name=$(printf '%s\n' "$out" | awk -F'\t' -v c="${CHAIN[$i]}" "$NAME_IS_CHAIN"' is_chain($1, c) && $3 == "committed" { print $1 }' | head -n1)
    [ -n "$name" ] || si_fail "snapimport's own List has no committed snapshot named .../${CHAIN[$i]}" || return 1
    parent=$(printf '%s\n' "$out" | awk -F'\t' -v n="$name" '$1 == n { print $2 }' | head -n1)
    [ "$parent" = "$prev" ] || si_fail "snapimport: $name has parent '$parent', want '$prev'" || return 1
    prev=$name
  done
}
si_step "$SNAPSHOTTER's own List (gRPC on its socket) holds the same chain" check_backend_chain

# --- run a container ------------------------------------------------------------------------------
# shellcheck disable=SC2016
SCRIPT='
echo "MARKER=$(cat /top-marker.txt)"
echo "OPQ=$(ls -A /data/opq | tr "\n" " ")"
if [ -e '"$SI_IMG_DELETED"' ] || [ -L '"$SI_IMG_DELETED"' ]; then echo DELETED=present; else echo DELETED=absent; fi
echo "ETC=$(ls -A /etc | tr "\n" " ")"
echo "WHITEOUT_FILES=$(find / -xdev -name ".wh.*" | wc -l)"
echo "L1=$(cat /etc/hello.txt)"
echo "L1_KEEP=$(cat /data/keep/l1.txt)"
echo "L2=$(cat /etc/layer2.txt)"
echo "L2_USR=$(cat /usr/share/snapimport/layer2.txt)"
echo "SH=$(readlink /bin/sh)"
echo DONE
'
run() {
  si_ctr_run "$NS" --rm --snapshotter "$SNAPSHOTTER" "$REF" "$CONTAINER" /bin/sh -c "$SCRIPT" \
    >"$SI_WORK/logs/run.out" 2>"$SI_WORK/logs/run.err" || {
    cat "$SI_WORK/logs/run.out" "$SI_WORK/logs/run.err" >&2
    si_fail "ctr run failed"
  }
}
si_step "ctr run --rm --snapshotter $SNAPSHOTTER $REF $CONTAINER" run
sed 's/^/    container: /' "$SI_WORK/logs/run.out" >&2

expect_line() {
  local key=$1 want=$2 got
  got=$(grep -m1 "^$key=" "$SI_WORK/logs/run.out" | cut -d= -f2-) || true
  [ "$got" = "$want" ] || fail "container printed $key='$got', want '$want'"
}
grep -qx DONE "$SI_WORK/logs/run.out" || fail "the container script did not run to the end"
expect_line MARKER "$SI_IMG_MARKER"
expect_line OPQ "$SI_IMG_OPQ_NEW "
expect_line DELETED absent
expect_line WHITEOUT_FILES 0
expect_line L1 "hello from layer 1"
expect_line L1_KEEP "layer 1 file that stays"
expect_line L2 "hello from layer 2"
expect_line L2_USR "layer 2 data"
expect_line SH busybox
grep -m1 '^ETC=' "$SI_WORK/logs/run.out" | grep -q "$(basename "$SI_IMG_DELETED")" &&
  fail "ls /etc still shows $(basename "$SI_IMG_DELETED") (whiteout not applied)"
si_log "container output is right: top-layer marker present, whiteout-deleted file absent, opaque dir holds only $SI_IMG_OPQ_NEW"

# ctr run --rm removed the container's active snapshot; only the image's chain remains.
left=$(si_ctr -n "$NS" snapshots --snapshotter "$SNAPSHOTTER" ls | awk 'NR > 1 { print $1 }' | sort)
want=$(printf '%s\n' "${CHAIN[@]}" | sort)
[ "$left" = "$want" ] || fail "after ctr run --rm the snapshots are: $(tr '\n' ' ' <<<"$left")want only the image chain"

# --- remove the image; GC must remove the snapshots in snapimport ----------------------------------
si_step "ctr images rm --sync $REF (synchronous GC)" si_ctr -n "$NS" images rm --sync "$REF"
left=$(si_ctr -n "$NS" snapshots --snapshotter "$SNAPSHOTTER" ls | awk 'NR > 1 { print $1 }')
[ -z "$left" ] || fail "containerd still lists snapshots after images rm --sync: $(tr '\n' ' ' <<<"$left")"

check_backend_empty() {
  local out c bad=0
  out=$(backend_list) || return 1
  [ -z "$out" ] || printf '%s\n' "$out" | sed 's/^/    backend: /' >&2
  for c in "${CHAIN[@]}"; do
    if printf '%s\n' "$out" | awk -F'\t' -v c="$c" "$NAME_IS_CHAIN"' is_chain($1, c) { f = 1 } END { exit !f }'; then
      si_warn "$SNAPSHOTTER still holds a snapshot for chain $c"
      bad=1
    fi
  done
  [ "$bad" = 0 ] || si_fail "containerd's GC did not remove the image's snapshots from $SNAPSHOTTER"
}
si_step "$SNAPSHOTTER's own List no longer holds the image's snapshots" check_backend_empty

# GC ends with a Cleanup call, so the snapshot directories must be gone from disk as well
# (DESIGN.md "On disk": snapshots/<numeric id>/{fs,work} under the root).
if [ "$SNAPSHOTTER" = snapimport ]; then
  if [ -d "$SI_SNAPIMPORT_ROOT/snapshots" ]; then
    leftover=$(find "$SI_SNAPIMPORT_ROOT/snapshots" -mindepth 1 -maxdepth 1 -printf '%f ')
    [ -z "$leftover" ] || fail "after GC and Cleanup, $SI_SNAPIMPORT_ROOT/snapshots still holds: $leftover"
    si_log "snapimport's snapshots/ directory is empty after GC and Cleanup"
  else
    si_warn "no $SI_SNAPIMPORT_ROOT/snapshots directory; skipped the on-disk check"
  fi
fi

si_print_timings
si_log "e2e-containerd PASSED"
