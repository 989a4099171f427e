#!/usr/bin/env bash
# The README's demo: installs what is missing, builds snapimport, then, all on this machine and on
# 127.0.0.1 only, starts a private registry, builds and pushes a small three-layer sample image,
# starts snapimport and a private containerd that loads it as its snapshotter and content store
# (CRI on, as on a Kubernetes node), pulls the image with `snapimport pull` (kubelet's path:
# snapimport imports every layer itself), shows `snapimport status` and its metrics, and runs a
# container from the image. Prints how long each step took.
#
#   scripts/demo.sh                 # everything is stopped and removed at the end
#   KEEP=1 scripts/demo.sh          # leave it all running, print the paths and how to clean up
#
# Other knobs: SKIP_SETUP=1 / SKIP_BUILD=1 skip scripts/setup.sh / scripts/build.sh;
# SNAPIMPORT_BIN=path uses another binary (default: ${BUILD_DIR:-build}/cli/snapimport).
#
# The demo never uses the system containerd (/run/containerd, /var/lib/containerd): its containerd
# has its own root, state and socket under a temporary directory, and runs in a private mount
# namespace with its own /run.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

if [ "$(id -u)" -ne 0 ]; then
  echo "demo.sh: must run as root (containerd, mounts and runc need it); try: sudo $0" >&2
  exit 1
fi

# shellcheck source=tests/integration/lib.sh
source "$repo/tests/integration/lib.sh"

demo_start=$(date +%s.%N)
si_init_workdir snapimport-demo
if [ "${SKIP_SETUP:-0}" != 1 ]; then
  si_step "install packages (scripts/setup.sh)" scripts/setup.sh
fi
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  si_step "build snapimport (scripts/build.sh)" scripts/build.sh
fi
SNAPIMPORT_BIN=${SNAPIMPORT_BIN:-$repo/${BUILD_DIR:-build}/cli/snapimport}
case "$SNAPIMPORT_BIN" in /*) ;; *) SNAPIMPORT_BIN=$repo/$SNAPIMPORT_BIN ;; esac
export SNAPIMPORT_BIN
[ -x "$SNAPIMPORT_BIN" ] || si_die "no snapimport binary at $SNAPIMPORT_BIN (did scripts/build.sh run?)"

SI_NAMESPACE=demo
TAG=v1
REPO=snapimport/demo
CONTAINER=snapimport-demo

oci=$SI_WORK/oci

# The one place that decides how the sample image reaches the registry.
# Pushed with snapimport's own registry client (the registry is plain HTTP on loopback).
demo_push() {
  "$SNAPIMPORT_BIN" copy --quiet --dest-tls-verify=false "oci:$oci:$TAG" "docker://$SI_REGISTRY/$REPO:$TAG"
}

si_step "start a private registry on 127.0.0.1" si_start_registry
ref=$SI_REGISTRY/$REPO:$TAG
si_step "build the sample image (3 layers: busybox, files, whiteout + opaque dir)" \
  si_build_test_image "$oci" "$TAG"
si_step "push the sample image to $ref (snapimport copy)" demo_push
# snapimport's own config: where registry hosts are configured, and a metrics endpoint.
si_write_hosts_dir "$SI_REGISTRY"
si_write_snapimport_config
si_step "start snapimport (config $SI_WORK/snapimport.toml)" si_start_snapimport --config "$SI_WORK/snapimport.toml"
# As packaging/containerd/config-1.6.toml sets it up on a node: snapshotter and content store,
# CRI with snapshot annotations so the importer learns each image's layers.
si_use_cri_and_snapimport_content
si_step "start a private containerd with snapimport as snapshotter and content store" si_start_containerd
SI_NAMESPACE=k8s.io # CRI's namespace

pull() {
  "$SNAPIMPORT_BIN" pull --image-endpoint "unix://$SI_CONTAINERD_SOCK" "$ref" >"$SI_WORK/logs/pull.out" 2>&1 || {
    tail -n 20 "$SI_WORK/logs/pull.out" >&2
    return 1
  }
}
si_step "snapimport pull $ref (CRI PullImage; snapimport imports the layers)" pull

echo >&2
echo "Snapshots containerd now holds in snapimport (one committed snapshot per layer):" >&2
si_ctr -n "$SI_NAMESPACE" snapshots --snapshotter snapimport ls >&2
echo >&2
echo "snapimport status (recent imports, per image and layer):" >&2
"$SNAPIMPORT_BIN" status --admin-address "${SI_SNAPIMPORT_SOCK%.sock}-admin.sock" >&2
echo >&2
echo "Some of its metrics (curl http://127.0.0.1:$METRICS_PORT/metrics):" >&2
curl -fsS "http://127.0.0.1:$METRICS_PORT/metrics" |
  grep -E '^snapimport_(imports_(started|completed)_total\{source="registry"\}|fetched_bytes_total|written_bytes_total|layer_import_duration_seconds_(count|sum)|snapshots\{kind="committed"\}) ' |
  sed 's/^/  /' >&2
echo >&2

# shellcheck disable=SC2016
script='
echo
echo "  Hello from a container whose root filesystem is served by snapimport!"
echo "  running $(busybox | head -n1 | cut -d" " -f1-2) on kernel $(uname -r)"
echo "  top layer says:      $(cat /top-marker.txt)"
echo "  /data/opq holds:     $(ls -A /data/opq) (layer 2 files hidden by an opaque dir)"
if [ -e /etc/deleted-by-layer3.txt ]; then echo "  whiteout: NOT applied"; else echo "  /etc/deleted-by-layer3.txt is gone (whiteout in layer 3)"; fi
echo
'
run() {
  si_ctr_run "$SI_NAMESPACE" --rm --snapshotter snapimport "$ref" "$CONTAINER" /bin/sh -c "$script"
}
si_step "ctr run --rm --snapshotter snapimport $ref $CONTAINER" run

total=$(awk -v a="$demo_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
si_print_timings
printf '%9s %s\n' "$total" "total" >&2
if [ "${KEEP:-0}" != 1 ]; then
  echo "(run with KEEP=1 to keep the registry, snapimport and containerd running afterwards)" >&2
fi
