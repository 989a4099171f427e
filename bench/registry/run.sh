#!/usr/bin/env bash
# Registry push/pull benchmark (issue 4, acceptance 6): `snapimport copy` against `skopeo copy`,
# pushing a multi-layer image (~600 MB compressed at scale 1, the import benchmark's "large" image)
# from an OCI layout to a local distribution registry and pulling it back into a fresh OCI layout.
# Both tools run in the same run, alternating (the order flips every round), each push into an
# empty registry (a fresh one per push: nothing can be skipped or cross-repository mounted, even
# through skopeo's blob-info cache), with the page cache dropped before every timed copy. Prints
# every round's times, the medians and the ratio snapimport / skopeo for push and for pull
# (goal: <= 0.5). See bench/README.md.
#
#   sudo bench/registry/run.sh
#
# Knobs (environment):
#   SNAPIMPORT_BIN   snapimport binary (default /tmp/build-main/cli/snapimport)
#   BENCH_SCALE      image size factor (default 1: ~600 MB compressed, 6 layers; 0.05 for a smoke run)
#   BENCH_ROUNDS     rounds per tool (default 3)
#   BENCH_IMAGE      which image of bench/import/images.sh (default large)
#   BENCH_IDLE_WAIT  seconds to wait for a quiet machine before each timed copy (default 15)
#   BENCH_WORK       where built images are cached (default /var/tmp/snapimport-bench, shared with
#                    bench/import/run.sh)
#   KEEP=1           keep the work dir and the registry; see tests/integration/lib.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=../../tests/integration/lib.sh
source "$REPO/tests/integration/lib.sh"
# shellcheck source=../import/images.sh
source "$REPO/bench/import/images.sh"
# shellcheck source=../machine.sh
source "$REPO/bench/machine.sh"

[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (drop_caches)"; exit 77; }
SCALE=${BENCH_SCALE:-1}
ROUNDS=${BENCH_ROUNDS:-3}
IMAGE=${BENCH_IMAGE:-large}
BENCH_WORK=${BENCH_WORK:-/var/tmp/snapimport-bench}
SNAPIMPORT_BIN=${SNAPIMPORT_BIN:-/tmp/build-main/cli/snapimport}
[ -x "$SNAPIMPORT_BIN" ] || si_die "no snapimport binary at $SNAPIMPORT_BIN (set SNAPIMPORT_BIN)"
si_require docker-registry skopeo jq curl tar gzip openssl sha256sum awk "$BI_PY"

mkdir -p "$BENCH_WORK/images"
OCI=$BENCH_WORK/images/$IMAGE-s$SCALE-$BI_RECIPE
si_step "image $IMAGE (scale $SCALE)" bi_build "$IMAGE" "$OCI" "$SCALE"
TAG=latest
SRC_MANIFEST=$(jq -r --arg t "$TAG" \
  '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | .digest' "$OCI/index.json")
NLAYERS=$(jq '.layers | length' "$OCI/blobs/sha256/${SRC_MANIFEST#sha256:}")
CBYTES=$(jq '[.layers[].size] | add' "$OCI/blobs/sha256/${SRC_MANIFEST#sha256:}")

si_init_workdir snapimport-regbench
POLICY=$SI_WORK/skopeo-policy.json
echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$POLICY"
RESULTS=$SI_WORK/results.tsv # tool op round seconds tool_cpu registry_cpu other_cpu
: >"$RESULTS"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# fresh_registry: stop the previous registry, set its storage aside (deleting is slow on a busy
# disk; the work dir goes at exit), start an empty one.
fresh_registry() {
  if [ -n "${SI_REGISTRY_PID:-}" ]; then
    si_stop_pid "$SI_REGISTRY_PID" registry 10
    mv "$SI_WORK/registry" "$(mktemp -d "$SI_WORK/trash.XXXXXX")/registry"
  fi
  si_start_registry
}

# timed TOOL OP ROUND CMD...: drop caches, wait for quiet, run CMD, record wall seconds and the
# busy CPU of the whole machine minus the tool's own (children's) CPU.
timed() {
  local tool=$1 op=$2 round=$3
  shift 3
  drop_caches
  wait_quiet 15
  local hz m0 m1 t0 secs c0 c1 r0 r1
  hz=$(getconf CLK_TCK)
  c0=$(awk '{ print $16 + $17 }' /proc/$$/stat)
  r0=$(awk '{ print $14 + $15 }' "/proc/$SI_REGISTRY_PID/stat")
  m0=$(machine_busy_ticks)
  t0=$(date +%s.%N)
  "$@"
  secs=$(si_elapsed "$t0")
  m1=$(machine_busy_ticks)
  r1=$(awk '{ print $14 + $15 }' "/proc/$SI_REGISTRY_PID/stat")
  c1=$(awk '{ print $16 + $17 }' /proc/$$/stat) # cutime+cstime: the waited-for tool
  local tool_cpu reg_cpu others
  tool_cpu=$(tick_seconds "$c0" "$c1")
  reg_cpu=$(tick_seconds "$r0" "$r1")
  others=$(awk -v a="$m0" -v b="$m1" -v t="$tool_cpu" -v r="$reg_cpu" -v hz="$hz" 'BEGIN { printf "%.1f", (b - a) / hz - t - r }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$op" "$round" "$secs" "$tool_cpu" "$reg_cpu" "$others" >>"$RESULTS"
  si_log "    $tool $op round $round: ${secs}s (cpu: tool ${tool_cpu}s, registry ${reg_cpu}s, rest of machine ${others}s)"
}

check_pulled() { # DIR: the pulled layout holds the same manifest digest
  local got
  got=$(jq -r '.manifests[0].digest' "$1/index.json")
  [ "$got" = "$SRC_MANIFEST" ] || si_fail "pulled manifest $got != source $SRC_MANIFEST in $1"
}

si_push() { "$SNAPIMPORT_BIN" copy --quiet --dest-tls-verify=false "oci:$OCI:$TAG" "docker://$1" >>"$SI_WORK/logs/copy.out"; }
sk_push() { skopeo --policy "$POLICY" copy --quiet --dest-tls-verify=false "oci:$OCI:$TAG" "docker://$1"; }
si_pull() { "$SNAPIMPORT_BIN" copy --quiet --src-tls-verify=false "docker://$1" "oci:$2:$TAG" >>"$SI_WORK/logs/copy.out"; }
sk_pull() { skopeo --policy "$POLICY" copy --quiet --src-tls-verify=false "docker://$1" "oci:$2:$TAG"; }

round() { # TOOL(si|sk) N
  local t=$1 n=$2 name
  [ "$t" = si ] && name=snapimport || name=skopeo
  si_step "fresh registry for $name round $n" fresh_registry
  local ref=$SI_REGISTRY/bench/repo-$t-$n:$TAG dir=$SI_WORK/pull-$t-$n
  si_step "$name push round $n" timed "$name" push "$n" "${t}_push" "$ref"
  si_registry_has "bench/repo-$t-$n" "$TAG" || si_die "registry lacks bench/repo-$t-$n:$TAG after the push"
  si_step "$name pull round $n" timed "$name" pull "$n" "${t}_pull" "$ref" "$dir"
  check_pulled "$dir" || exit 1
  mv "$dir" "$(mktemp -d "$SI_WORK/trash.XXXXXX")/"
}

si_log "image: $IMAGE scale $SCALE, $NLAYERS layers, $((CBYTES / 1000000)) MB compressed; $ROUNDS rounds per tool"
si_log "snapimport: $SNAPIMPORT_BIN; $(skopeo --version)"
for ((r = 1; r <= ROUNDS; r++)); do
  if ((r % 2)); then round si "$r"; round sk "$r"; else round sk "$r"; round si "$r"; fi
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------------------------------------------
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
SUMMARY=$SI_WORK/summary.txt
{
  echo
  echo "registry benchmark: $IMAGE image, scale $SCALE, $NLAYERS layers, $((CBYTES / 1000000)) MB compressed, $ROUNDS rounds per tool"
  echo "load average: start $LOAD_START, end $LOAD_END ($(nproc) cores)"
  echo "cpu columns: CPU seconds used during the copy by the tool, the registry, and everything else on the machine"
  printf '%-10s %-5s %5s %9s %9s %9s %9s\n' tool op round seconds tool_cpu reg_cpu other_cpu
  sort -k2,2r -k1,1 -k3,3n "$RESULTS" | awk -F'\t' '{ printf "%-10s %-5s %5s %9s %9s %9s %9s\n", $1, $2, $3, $4, $5, $6, $7 }'
  echo
  for op in push pull; do
    msi=$(awk -F'\t' -v o=$op '$1 == "snapimport" && $2 == o { print $4 }' "$RESULTS" | median)
    msk=$(awk -F'\t' -v o=$op '$1 == "skopeo" && $2 == o { print $4 }' "$RESULTS" | median)
    awk -v o=$op -v a="$msi" -v b="$msk" -v mb="$CBYTES" 'BEGIN {
      printf "%s: median snapimport %.2fs (%.0f MB/s), skopeo %.2fs (%.0f MB/s), ratio snapimport/skopeo %.2f (goal <= 0.5)\n",
        o, a, mb / 1e6 / a, b, mb / 1e6 / b, a / b }'
  done
} | tee "$SUMMARY"
mkdir -p "$BENCH_WORK/results"
cp "$SUMMARY" "$BENCH_WORK/results/registry-summary-$(date +%Y%m%d-%H%M%S).txt"
cp "$RESULTS" "$BENCH_WORK/results/registry-rounds-$(date +%Y%m%d-%H%M%S).tsv"
si_print_timings
