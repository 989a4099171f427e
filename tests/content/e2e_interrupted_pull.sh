#!/usr/bin/env bash
# Acceptance test (issue 3): a pull is interrupted mid-layer by killing snapimport (kill -9), which
# then restarts on the same root. containerd's re-pull resumes the layer's ingest from the offset
# snapimport kept: fewer bytes cross the network than the layer holds, and the result is
# byte-identical. containerd uses snapimport as its content store and snapshotter.
#
#   SNAPIMPORT_BIN=build/cli/snapimport tests/content/e2e_interrupted_pull.sh
#
# A small throttling proxy between containerd and the registry makes the layer take a few seconds
# and counts the bytes it passes. The pulls run under one lease that outlives the failed attempt
# (go/leasedpull); with ctr's throw-away lease containerd's GC would drop the ingest at once.
# Needs root. KEEP=1 leaves everything running afterwards.
set -euo pipefail

# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"

if [ "$(id -u)" -ne 0 ]; then
  echo "e2e-interrupted-pull: SKIP: needs root (mounts, containerd, runc)" >&2
  exit 77
fi

NS=test
SI_NAMESPACE=$NS
TAG=v1
REPO=snapimport/interrupted
BIG_MIB=${BIG_MIB:-64}
RATE=${RATE:-$((16 << 20))} # bytes/s through the proxy
KILL_AT_PERCENT=30

fail() {
  printf '\n[%s] e2e-interrupted-pull FAILED: %s\n' "$(si_ts)" "$*" >&2
  si_dump_logs 60
  exit 1
}

si_require containerd ctr runc docker-registry skopeo umoci jq curl python3 sha256sum cmp go
[ -n "${SNAPIMPORT_BIN:-}" ] || fail "SNAPIMPORT_BIN is not set (ctest sets it; by hand: SNAPIMPORT_BIN=build/cli/snapimport)"
[ -x "$SNAPIMPORT_BIN" ] || fail "SNAPIMPORT_BIN=$SNAPIMPORT_BIN is not executable"

si_init_workdir snapimport-interrupted-pull
OCI=$SI_WORK/oci

# --- image: the three-layer test image plus one big incompressible layer -------------------------
add_big_layer() {
  local d=$SI_WORK/biglayer
  mkdir -p "$d"
  head -c "$((BIG_MIB << 20))" /dev/urandom >"$d/big.bin"
  chmod 0644 "$d/big.bin"
  BIG_SHA=$(sha256sum "$d/big.bin" | cut -d' ' -f1)
  tar -C "$d" --create --file "$SI_WORK/big.tar" --format=posix --numeric-owner --owner=0 --group=0 big.bin
  umoci raw add-layer --image "$OCI:$TAG" --history.created_by "big random layer" "$SI_WORK/big.tar"
  umoci gc --layout "$OCI"
  rm -rf "$d" "$SI_WORK/big.tar"
}
si_step "start a local registry" si_start_registry
si_step "build the test image" si_build_test_image "$OCI" "$TAG"
si_step "add a ${BIG_MIB} MiB incompressible layer" add_big_layer
manifest=$(jq -r '.manifests[0].digest' "$OCI/index.json")
LAYER=$(jq -r '.layers[-1].digest' "$OCI/blobs/sha256/${manifest#sha256:}")
LAYER_SIZE=$(jq -r '.layers[-1].size' "$OCI/blobs/sha256/${manifest#sha256:}")
si_log "big layer $LAYER, $LAYER_SIZE bytes"
si_step "push the image to the registry" si_push_image "$OCI" "$TAG" "$SI_REGISTRY/$REPO:$TAG"

# --- throttling, counting proxy in front of the registry ------------------------------------------
COUNTER=$SI_WORK/proxy.bytes
start_proxy() {
  local port
  port=$(si_free_port)
  python3 - "$port" "$SI_REGISTRY_PORT" "$RATE" "$COUNTER" >>"$SI_WORK/logs/proxy.log" 2>&1 <<'PY' &
import socket, sys, threading, time
port, upstream, rate, counter = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
lock = threading.Lock()
total = 0
def record(n):
    global total
    with lock:
        total += n
        with open(counter + ".tmp", "w") as f:
            f.write(str(total))
        import os
        os.replace(counter + ".tmp", counter)
def pump(src, dst, throttle):
    start, sent = time.monotonic(), 0
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
            if throttle:
                record(len(data))
                sent += len(data)
                ahead = sent / rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
def serve(client):
    up = socket.create_connection(("127.0.0.1", upstream))
    threading.Thread(target=pump, args=(client, up, False), daemon=True).start()
    threading.Thread(target=pump, args=(up, client, True), daemon=True).start()
record(0)
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", port))
ls.listen(64)
print("proxy on", port, "->", upstream, flush=True)
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
  local pid=$!
  si_track proxy "$pid"
  local deadline=$((SECONDS + 10))
  until curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null; do
    si_alive "$pid" || si_fail "proxy exited" || return 1
    [ "$SECONDS" -lt "$deadline" ] || si_fail "proxy did not come up" || return 1
    sleep 0.1
  done
  PROXY=127.0.0.1:$port
}
si_step "start a throttling proxy (${RATE} B/s) in front of the registry" start_proxy
REF=$PROXY/$REPO:$TAG
proxied() { cat "$COUNTER"; }

# --- snapimport + containerd -------------------------------------------------------------------------
si_step "start snapimport" si_start_snapimport
INGESTS=$SI_SNAPIMPORT_ROOT/content/ingest
BLOBS=$SI_SNAPIMPORT_ROOT/content/blobs/sha256
SI_CONTAINERD_DISABLED_EXTRA="io.containerd.content.v1.content"
SI_CONTAINERD_EXTRA_CONFIG="[proxy_plugins.snapimport-content]
  type = \"content\"
  address = \"$SI_SNAPIMPORT_SOCK\""
si_step "start containerd with snapimport as content store and snapshotter" \
  si_start_containerd "$SI_SNAPIMPORT_SOCK"

# --- the puller ------------------------------------------------------------------------------------
# `ctr images pull` deletes its lease when a pull fails, and containerd's GC then forgets the
# ingests at once, so no client of containerd 1.6 could resume with ctr. leasedpull (go/leasedpull)
# pulls under a lease it keeps, as a retrying puller would.
build_leasedpull() {
  local gopath=$SI_WORK/gopath
  mkdir -p "$gopath/src/snapimport/tests/content"
  cp -r "$SI_CONTENT_DIR/go/leasedpull" "$gopath/src/snapimport/tests/content/"
  (cd "$gopath/src/snapimport/tests/content/leasedpull" &&
    GO111MODULE=off GOPATH=$gopath:/usr/share/gocode GOFLAGS= GOPROXY=off go build -o "$SI_WORK/leasedpull" .)
}
SI_CONTENT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
si_step "build leasedpull (Go, GOPATH mode)" build_leasedpull
leased_pull() {
  timeout 300 "$SI_WORK/leasedpull" -address "$SI_CONTAINERD_SOCK" -namespace "$NS" \
    -lease interrupted-pull -snapshotter snapimport -plain-http "$REF"
}

# --- first pull, killed mid-layer -------------------------------------------------------------------
FIRST_PID=$SI_SNAPIMPORT_PID
leased_pull >"$SI_WORK/logs/pull1.out" 2>&1 &
PULL_PID=$!
# Size of the biggest ingest's data (the big layer's), 0 if there is none.
largest_ingest() {
  local size=0 f s
  for f in "$INGESTS"/*/data; do
    [ -f "$f" ] || continue
    s=$(stat -c %s "$f" 2>/dev/null || echo 0)
    [ "$s" -gt "$size" ] && size=$s
  done
  echo "$size"
}
kill_mid_layer() {
  local want=$((LAYER_SIZE * KILL_AT_PERCENT / 100)) deadline=$((SECONDS + 120)) size
  while :; do
    size=$(largest_ingest)
    [ "$size" -ge "$want" ] && break
    si_alive "$PULL_PID" || si_fail "the pull ended before the layer was ${KILL_AT_PERCENT}% written" || return 1
    [ "$SECONDS" -lt "$deadline" ] || si_fail "the layer never reached ${KILL_AT_PERCENT}%" || return 1
    sleep 0.02
  done
  [ "$FIRST_PID" -gt 1 ] || si_fail "no pid for the first snapimport" || return 1
  kill -9 "$FIRST_PID"
  KILLED_AT=$size
  si_log "killed snapimport (pid $FIRST_PID) with $size of $LAYER_SIZE layer bytes written"
}
si_step "kill -9 snapimport when the big layer is ${KILL_AT_PERCENT}% written" kill_mid_layer
if wait "$PULL_PID"; then fail "the first pull succeeded although snapimport was killed mid-layer"; fi
si_log "first pull failed as it should: $(tail -n 1 "$SI_WORK/logs/pull1.out")"
[ ! -e "$BLOBS/${LAYER#sha256:}" ] || fail "the half-written layer is in the blob store"

restart() {
  rm -f "$SI_SNAPIMPORT_SOCK" # the killed daemon's socket; wait for the new one
  si_start_snapimport
}
si_step "restart snapimport on the same root" restart

# containerd reconnects by itself; `ctr content active` asks snapimport (Status) for every ingest.
RESUMED_AT=
wait_active() {
  local deadline=$((SECONDS + 60)) out
  while :; do
    if out=$(si_ctr -n "$NS" content active 2>&1); then
      printf '%s\n' "$out" | sed 's/^/    ctr content active: /' >&2
      printf '%s\n' "$out" | awk -v l="layer-$LAYER" '$1 == l { f = 1 } END { exit !f }' ||
        si_fail "ctr content active does not show the layer's ingest layer-$LAYER" || return 1
      # ctr rounds sizes for humans; the exact offset is the size of the ingest's data.
      RESUMED_AT=$(largest_ingest)
      return 0
    fi
    [ "$SECONDS" -lt "$deadline" ] || si_fail "containerd could not reach snapimport again: $out" || return 1
    sleep 0.5
  done
}
si_step "the layer's ingest survived the restart (ctr content active)" wait_active
[ "$RESUMED_AT" -ge "$KILLED_AT" ] && [ "$RESUMED_AT" -lt "$LAYER_SIZE" ] ||
  fail "ingest offset after restart is $RESUMED_AT; it was $KILLED_AT when killed (layer $LAYER_SIZE)"

# --- re-pull resumes ----------------------------------------------------------------------------------
BEFORE=$(proxied)
repull() {
  leased_pull >"$SI_WORK/logs/pull2.out" 2>&1 || {
    tail -n 20 "$SI_WORK/logs/pull2.out" >&2
    si_fail "the re-pull failed"
  }
}
si_step "re-pull $REF" repull
RESENT=$(($(proxied) - BEFORE))
si_log "re-pull moved $RESENT bytes through the proxy; the layer is $LAYER_SIZE bytes, resumed at $RESUMED_AT"
[ "$RESENT" -lt "$LAYER_SIZE" ] || fail "the re-pull sent $RESENT bytes, not fewer than the layer's $LAYER_SIZE"
# What is left of the layer, plus the manifest, config and HTTP headers (well under 1 MiB).
[ "$RESENT" -le $((LAYER_SIZE - RESUMED_AT + (1 << 20))) ] ||
  fail "the re-pull sent $RESENT bytes, more than the $((LAYER_SIZE - RESUMED_AT)) bytes left of the layer"

check_identical() {
  cmp "$BLOBS/${LAYER#sha256:}" "$OCI/blobs/sha256/${LAYER#sha256:}" ||
    si_fail "the layer in snapimport's store differs from the one pushed" || return 1
  [ -z "$(ls -A "$INGESTS")" ] || si_fail "ingests left behind: $(ls -A "$INGESTS")" || return 1
  si_ctr_run "$NS" --rm --snapshotter snapimport "$REF" ctr-big /bin/busybox sha256sum /big.bin \
    >"$SI_WORK/logs/run.out" 2>"$SI_WORK/logs/run.err" || {
    cat "$SI_WORK/logs/run.out" "$SI_WORK/logs/run.err" >&2
    si_fail "ctr run failed"
  }
  [ "$(cut -d' ' -f1 "$SI_WORK/logs/run.out")" = "$BIG_SHA" ] ||
    si_fail "big.bin in the container hashes to $(cut -d' ' -f1 "$SI_WORK/logs/run.out"), want $BIG_SHA"
}
si_step "the layer is byte-identical and the container sees the same big.bin" check_identical

si_print_timings
si_log "e2e-interrupted-pull PASSED (re-sent $RESENT of $LAYER_SIZE layer bytes)"
