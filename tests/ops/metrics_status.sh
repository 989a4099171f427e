#!/usr/bin/env bash
# Metrics and `snapimport status` against a live daemon doing real work: a real containerd 1.6
# (CRI on, snapimport as snapshotter and content store) pulls a three-layer image with
# `snapimport pull`, through a proxy that slows the registry down so the pull can be watched.
# While it runs, `snapimport status` must show the image with per-layer progress; afterwards the
# /metrics endpoint must hold the import counters, the layer-duration histogram buckets, the
# gRPC request counts and the snapshot gauges, and /healthz must answer.
set -euo pipefail
source "$(dirname "$0")/../integration/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (containerd, mounts)"; exit 77; }
[ -n "${SNAPIMPORT_BIN:-}" ] || si_die "SNAPIMPORT_BIN is not set"
fail() {
  si_fail "$*"
  si_dump_logs 30
  exit 1
}

si_init_workdir ops-metrics-status
si_step "start a registry on 127.0.0.1" si_start_registry
OCI=$SI_WORK/oci
TAG=v1
REPO=test/ops-metrics
si_step "build the three-layer test image" si_build_test_image "$OCI" "$TAG"
si_step "push it to $SI_REGISTRY" si_push_image "$OCI" "$TAG" "$SI_REGISTRY/$REPO:$TAG"

# Pull through the slow proxy: 256 KiB/s per connection makes the busybox layer take seconds.
"$SI_PYTHON" "$(dirname "$0")/throttle_proxy.py" "$SI_REGISTRY" 262144 >"$SI_WORK/proxy.port" &
si_track throttle-proxy $!
si_wait_for "the throttling proxy" 10 test -s "$SI_WORK/proxy.port"
SLOW=127.0.0.1:$(cat "$SI_WORK/proxy.port")
REF=$SLOW/$REPO:$TAG
si_write_hosts_dir "$SLOW"

si_write_snapimport_config
si_step "start snapimport with metrics on 127.0.0.1:$METRICS_PORT" \
  si_start_snapimport --config "$SI_WORK/snapimport.toml"
ADMIN=${SI_SNAPIMPORT_SOCK%.sock}-admin.sock
si_wait_for "the admin socket" 10 test -S "$ADMIN"
curl -fsS "http://127.0.0.1:$METRICS_PORT/healthz" | grep -qx ok || fail "/healthz does not answer ok"
"$SNAPIMPORT_BIN" status --admin-address "$ADMIN" | grep -q "No imports in flight" ||
  fail "status on an idle daemon should say nothing is in flight"

si_use_cri_and_snapimport_content
si_step "start containerd (CRI on, snapimport as snapshotter and content store)" si_start_containerd

# Watch the pull: sample `snapimport status` until the pull ends.
"$SNAPIMPORT_BIN" pull --image-endpoint "unix://$SI_CONTAINERD_SOCK" "$REF" >"$SI_WORK/logs/pull.out" 2>&1 &
pull_pid=$!
samples=0
running=
streaming=
while si_alive "$pull_pid"; do
  out=$("$SNAPIMPORT_BIN" status --admin-address "$ADMIN" 2>&1 || true)
  samples=$((samples + 1))
  # Keep the last sample in flight: it shows the most progress.
  if grep -q "running for" <<<"$out" && grep -q " fetching " <<<"$out"; then running=$out; fi
  # A layer still fetching (fewer bytes than its size) whose extraction has begun: the unpacker
  # streams, and status shows it.
  "$SNAPIMPORT_BIN" status --admin-address "$ADMIN" --json >"$SI_WORK/logs/status-$samples.json" 2>&1 || true
  if [ -z "$streaming" ] && jq -e '[.images[].layers[] | select(.state == "fetching" and
      .fetched_bytes < .size and .written_bytes > 0)] | length > 0' "$SI_WORK/logs/status-$samples.json" >/dev/null 2>&1; then
    streaming=yes
  fi
  sleep 0.2
done
wait "$pull_pid" || fail "snapimport pull failed: $(cat "$SI_WORK/logs/pull.out")"
grep -q "^1 pulled, 0 failed" "$SI_WORK/logs/pull.out" || fail "snapimport pull did not report success"
[ -n "$running" ] || fail "none of $samples status samples showed an import in flight"
[ -n "$streaming" ] || fail "no status sample showed a layer with bytes written while it was still fetching"
echo "--- snapimport status while the pull ran (one of $samples samples):" >&2
sed 's/^/    /' <<<"$running" >&2
grep -q "IMAGE $REF" <<<"$running" || fail "status does not name the image $REF"
[ "$(grep -cE '^  sha256:[0-9a-f]{12} ' <<<"$running")" -eq 3 ] || fail "status does not list 3 layers"

after=$("$SNAPIMPORT_BIN" status --admin-address "$ADMIN")
echo "--- snapimport status after the pull:" >&2
sed 's/^/    /' <<<"$after" >&2
grep -q "finished in .* 3/3 layers done" <<<"$after" || fail "status after the pull does not show 3/3 layers done"
"$SNAPIMPORT_BIN" status --admin-address "$ADMIN" --json | jq -e '.images[0].layers | length == 3' >/dev/null ||
  fail "status --json is not the /status document"

# --- the metrics --------------------------------------------------------------------------------
metrics=$(curl -fsS "http://127.0.0.1:$METRICS_PORT/metrics")
admin_metrics=$(curl -fsS --unix-socket "$ADMIN" http://localhost/metrics)
grep -q '^snapimport_imports_completed_total' <<<"$admin_metrics" || fail "the admin socket does not serve /metrics"
value() { awk -v k="$1" '$1 == k { print $2 }' <<<"$metrics"; }
check() { # check NAME OP VALUE
  local v
  v=$(value "$1")
  [ -n "$v" ] || fail "metric $1 is missing"
  awk -v v="$v" -v w="$3" -v op="$2" 'BEGIN { exit !((op == ">=" && v + 0 >= w + 0) || (op == "==" && v + 0 == w + 0)) }' ||
    fail "metric $1 is $v, want $2 $3"
  si_log "metric $1 = $v"
}
check 'snapimport_imports_started_total{source="registry"}' ">=" 3
check 'snapimport_imports_completed_total{source="registry"}' "==" 3
check 'snapimport_imports_failed_total{reason="fetch",source="registry"}' "==" 0
check 'snapimport_fallbacks_total{reason="import_failed",source="registry"}' "==" 0
check snapimport_fetched_bytes_total ">=" 100000
check snapimport_layer_import_duration_seconds_count "==" 3
check 'snapimport_layer_import_duration_seconds_bucket{le="+Inf"}' "==" 3
check 'snapimport_layer_import_duration_seconds_bucket{le="600"}' "==" 3
check snapimport_import_jobs_in_flight "==" 0
check 'snapimport_snapshots{kind="committed"}' ">=" 3
check snapimport_snapshot_usage_bytes ">=" 100000
buckets=$(grep -c '^snapimport_layer_import_duration_seconds_bucket{le=' <<<"$metrics")
[ "$buckets" -ge 10 ] || fail "only $buckets histogram bucket lines"
grep -q '^# TYPE snapimport_layer_import_duration_seconds histogram' <<<"$metrics" || fail "no histogram TYPE line"
prepares=$(grep '^snapimport_grpc_requests_total{' <<<"$metrics" | grep 'Snapshots/Prepare"' | awk '{ s += $2 } END { print s + 0 }')
[ "$prepares" -ge 3 ] || fail "gRPC Prepare requests counted: $prepares, want >= 3"
grep -q '^snapimport_grpc_request_duration_seconds_bucket{.*Content/' <<<"$metrics" ||
  fail "no gRPC duration histogram for the content service"
si_log "gRPC Prepare requests counted: $prepares; histogram bucket lines: $buckets"
curl -fsS "http://127.0.0.1:$METRICS_PORT/status" >/dev/null 2>&1 && fail "/status must not be served on the TCP address"
si_log "PASS: status showed the pull in flight per layer; metrics hold counters, buckets and gauges"
