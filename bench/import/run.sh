#!/usr/bin/env bash
# Import benchmark: a cold CRI pull + unpack of the same images through containerd's own path (CRI
# snapshotter overlayfs, built-in content store) and through snapimport (snapimport as snapshotter
# AND content store, importer on), on containerd 1.6 and on containerd 2.1 (its default CRI path:
# the transfer service), in the same run, alternating, with fresh state and dropped caches before
# every round. Prints the medians, the ratios (snapimport against containerd 1.6 and against 2.1's
# own path), snapimport's peak RSS and a profile of where snapimport's time goes. See
# bench/README.md.
#
#   sudo bench/import/run.sh
#
# Knobs (environment):
#   SNAPIMPORT_BIN   snapimport binary (default: ${BUILD_DIR:-build}/cli/snapimport in the repo)
#   BENCH_SCALE      image size factor (default 1: ~600 MB / 1.6 GB large image, 100k-file small one)
#   BENCH_ROUNDS     rounds per image and mode (default 3)
#   BENCH_IMAGES     which images, in order (default "large small")
#   BENCH_MODES      which paths, each PATH@RELEASE with PATH containerd|snapimport and RELEASE
#                    1.6|1.7|2.1 (default "containerd@1.6 snapimport@1.6 containerd@2.1 snapimport@2.1");
#                    a snapimport mode may end in /KEY=VALUE, one more [import] key for its rounds,
#                    to compare settings in one run: snapimport@2.1/writeback_interval="0s";
#                    a containerd mode may end in /CONTAINERD_*=VALUE, an environment variable for
#                    its containerd: containerd@2.1/CONTAINERD_DISABLE_IGZIP=1 (Go's gzip, as on a
#                    node without Debian's isal package)
#   BENCH_PULL       cri (default): CRI PullImage (`snapimport pull`); ctr: `ctr images pull`
#                    (1.6, 1.7: its local pull; 2.1: the transfer service)
#   BENCH_ANNOTATIONS 1 (default): snapimport rounds pass CRI's layer labels (the importer fetches);
#                    0: they do not (CRI snapshot annotations off, 2.x exports not asking), so
#                    snapimport imports from containerd's writes
#   BENCH_DIFF       1: snapimport rounds on 1.7 and 2.1 also configure snapimport's diff service
#                    (proxy plugin snapimport-diff first in containerd's differ list); 0 (default)
#   BENCH_PROFILE    1 (default): one extra, untimed snapimport round of the first image under
#                    `perf record -a`; 0: no profile
#   BENCH_WORK       where built images are cached (default /var/tmp/snapimport-bench)
#   BENCH_FLOOR      1 (default): after the rounds, the floor the machine allows: every layer of
#                    each image through `snapimport unpack` alone (no network, no containerd), one
#                    at a time on a dropped cache; floor = max(sum of their CPU / cores, the largest
#                    layer's wall time), printed beside the medians. 0: skip
#   BENCH_AUTH       1: a private registry (htpasswd Basic auth) and credentials given only through
#                    CRI PullImage, as kubelet gives imagePullSecrets; snapimport rounds pull
#                    through its CRI image-service proxy ([cri] image_service_address), containerd
#                    rounds straight at containerd. 0 (default): an anonymous registry
#   BENCH_FS         fresh (default): every round's containerd and snapimport roots, and the floor's
#                    unpacks, are on a new ext4 (a loop file under the work dir, made before the round,
#                    removed after it); root: on the work dir's own filesystem, as before. On a
#                    filesystem where a few 100k files were deleted in the last minutes (an earlier
#                    run's cleanup, a test suite), ext4 skips recently freed inodes when it allocates
#                    new ones, and creating files costs several times the CPU: 6 layers unpacked at
#                    once took 13 CPU-s there against 6 on a fresh ext4. That penalty is the previous
#                    run's, not the path under test.
#   BENCH_FS_GB      size of that filesystem (default 12; sparse)
#   BENCH_MAX_LAYERS / BENCH_MAX_PER_REGISTRY   snapimport's [import] concurrency (defaults: the
#                    daemon's own)
#   KEEP=1           keep the run's work dir (logs, perf data) and processes; see tests/integration/lib.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=../../tests/integration/lib.sh
source "$REPO/tests/integration/lib.sh"
# shellcheck source=images.sh
source "$HERE/images.sh"
# shellcheck source=../machine.sh
source "$HERE/../machine.sh"

[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (containerd, mounts, drop_caches)"; exit 77; }
SCALE=${BENCH_SCALE:-1}
ROUNDS=${BENCH_ROUNDS:-3}
read -r -a IMAGES <<<"${BENCH_IMAGES:-large small}"
PROFILE=${BENCH_PROFILE:-1}
read -r -a MODES <<<"${BENCH_MODES:-containerd@1.6 snapimport@1.6 containerd@2.1 snapimport@2.1}"
for m in "${MODES[@]}"; do
  case "${m%%/*}" in containerd@1.6 | snapimport@1.6 | containerd@1.7 | snapimport@1.7 | containerd@2.1 | snapimport@2.1) ;;
    *) si_die "BENCH_MODES: unknown mode '$m' (PATH@RELEASE[/KEY=VALUE]: containerd or snapimport @ 1.6, 1.7 or 2.1)" ;;
  esac
  case "$m" in
    snapimport@*/*=*) ;;
    containerd@*/CONTAINERD_*=*) [[ "${m#*/}" =~ ^CONTAINERD_[A-Z0-9_]+=[^[:space:]]*$ ]] ||
      si_die "BENCH_MODES: '$m': a containerd variant is one /CONTAINERD_NAME=VALUE" ;;
    */*) si_die "BENCH_MODES: '$m': a snapimport variant is /KEY=VALUE with KEY in [import], a containerd one /CONTAINERD_NAME=VALUE (its environment)" ;;
  esac
done
mode_release() { # MODE: its containerd release
  local r=${1#*@}
  echo "${r%%/*}"
}
mode_variant() { # MODE: its /KEY=VALUE variant without the slash, or nothing
  case "$1" in */*=*) echo "${1#*/}" ;; esac
}
# containerd_gzip MODE: what that containerd decompresses gzip layers with. containerd runs an
# external decompressor found in PATH before Go's compress/gzip: igzip (2.x only) or unpigz (all),
# each unless its CONTAINERD_DISABLE_* variable is true. scripts/setup.sh installs Debian's isal for
# bench/unpack, so 2.1's own path here inflates with ISA-L too, in a process of its own.
containerd_gzip() {
  local rel env
  rel=$(mode_release "$1")
  env=$(mode_variant "$1")
  disabled() { case "$env" in "$1"=1 | "$1"=true | "$1"=TRUE | "$1"=True | "$1"=t | "$1"=T) return 0 ;; esac; return 1; }
  if [ "${rel%%.*}" -ge 2 ] && command -v igzip >/dev/null && ! disabled CONTAINERD_DISABLE_IGZIP; then
    echo "igzip ($(command -v igzip))"
  elif command -v unpigz >/dev/null && ! disabled CONTAINERD_DISABLE_PIGZ; then
    echo "unpigz ($(command -v unpigz))"
  else
    echo "Go's compress/gzip"
  fi
}
mode_file_tag() { # MODE: the mode as a file name part
  echo "$1" | tr '/="' '+-_'
}
PULL=${BENCH_PULL:-cri}
case "$PULL" in cri | ctr) ;; *) si_die "BENCH_PULL=$PULL: expected cri or ctr" ;; esac
ANNOTATIONS=${BENCH_ANNOTATIONS:-1}
DIFF=${BENCH_DIFF:-0}
[ "$PULL" = cri ] || ANNOTATIONS=0 # ctr passes no CRI labels (2.1: exports must not ask either)
BENCH_WORK=${BENCH_WORK:-/var/tmp/snapimport-bench}
SNAPIMPORT_BIN=${SNAPIMPORT_BIN:-$REPO/${BUILD_DIR:-build}/cli/snapimport}
case "$SNAPIMPORT_BIN" in /*) ;; *) SNAPIMPORT_BIN=$REPO/$SNAPIMPORT_BIN ;; esac
export SNAPIMPORT_BIN
[ -x "$SNAPIMPORT_BIN" ] || si_die "no snapimport binary at $SNAPIMPORT_BIN (run scripts/build.sh or set SNAPIMPORT_BIN)"
si_require containerd ctr runc docker-registry skopeo jq tar gzip openssl sha256sum awk "$BI_PY"
export SI_CONTAINERD_LOG_LEVEL=${SI_CONTAINERD_LOG_LEVEL:-info}

# ------------------------------------------------------------------------------------------------
# images (cached across runs) and the registry (per run)

mkdir -p "$BENCH_WORK/images"
declare -A OCI REF NLAYERS
for img in "${IMAGES[@]}"; do
  OCI[$img]=$BENCH_WORK/images/$img-s$SCALE-$BI_RECIPE
  si_step "image $img (scale $SCALE)" bi_build "$img" "${OCI[$img]}" "$SCALE"
done

si_init_workdir snapimport-bench
AUTH=${BENCH_AUTH:-0}
CREDS=
PUSH_ARGS=()
if [ "$AUTH" = 1 ]; then
  CREDS="bench:pw-$RANDOM$RANDOM"
  # bcrypt's lowest cost: the registry checks the password on every request.
  htpasswd -Bbn -C 4 "${CREDS%%:*}" "${CREDS#*:}" | sed '/^$/d' >"$SI_WORK/htpasswd"
  si_step "start a registry with htpasswd Basic auth on 127.0.0.1" si_start_registry "$SI_WORK/htpasswd"
  PUSH_ARGS=(--dest-creds "$CREDS")
else
  si_step "start a registry on 127.0.0.1" si_start_registry
fi
push() { # OCI TAG REF
  local policy=$SI_WORK/skopeo-policy.json
  [ -f "$policy" ] || echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$policy"
  skopeo --policy "$policy" copy --quiet --dest-tls-verify=false "${PUSH_ARGS[@]}" "oci:$1:$2" "docker://$3"
}
for img in "${IMAGES[@]}"; do
  REF[$img]=$SI_REGISTRY/bench/$img:latest
  si_step "push $img to ${REF[$img]}" push "${OCI[$img]}" latest "${REF[$img]}"
  m=$(si_image_manifest "${OCI[$img]}" latest)
  NLAYERS[$img]=$(jq '.layers | length' "$m")
done
si_write_hosts_dir "$SI_REGISTRY"

# ------------------------------------------------------------------------------------------------
# one round: fresh daemons on fresh roots, caches dropped, one timed `snapimport pull`

# image mode round seconds hwm_kib cpu_snapimport cpu_containerd cpu_registry imported disk_mb cpu_others
RESULTS=$SI_WORK/results.tsv
: >"$RESULTS"
METRICS_PORT=

cpu_ticks() { # utime+stime of PID in clock ticks (0 if gone)
  awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

FS=${BENCH_FS:-fresh}
case "$FS" in fresh | root) ;; *) si_die "BENCH_FS=$FS: expected fresh or root" ;; esac
FS_LOOP=
# fresh_fs_up DIR...: with BENCH_FS=fresh, a new ext4 (1.5 M inodes: the small image's four
# 100k-file layers and containerd's copy fit) bound at each DIR; otherwise just the directories.
# A run that fails mid-round leaves that loop device attached to a deleted file; `losetup -l`
# shows it.
fresh_fs_up() {
  mkdir -p "$@"
  [ "$FS" = fresh ] || return 0
  local img=$SI_WORK/round-fs.img mnt=$SI_WORK/round-fs d
  rm -f "$img"
  truncate -s "${BENCH_FS_GB:-12}G" "$img"
  mkfs.ext4 -q -F -N 1500000 -E lazy_itable_init=0,lazy_journal_init=0 "$img" ||
    si_die "mkfs.ext4 of $img failed"
  FS_LOOP=$(losetup --direct-io=on -f --show "$img" 2>/dev/null || losetup -f --show "$img") ||
    si_die "losetup of $img failed"
  mkdir -p "$mnt"
  mount "$FS_LOOP" "$mnt" || si_die "mount $FS_LOOP at $mnt failed"
  for d in "$@"; do
    mkdir -p "$mnt/${d##*/}"
    mount --bind "$mnt/${d##*/}" "$d" || si_die "bind $mnt/${d##*/} at $d failed"
  done
}
# fresh_fs_down DIR...: undoes fresh_fs_up (whatever is mounted below the DIRs is gone already).
fresh_fs_down() {
  [ -n "$FS_LOOP" ] || return 0
  local d
  for d in "$@" "$SI_WORK/round-fs"; do umount "$d" 2>/dev/null || umount -l "$d"; done
  losetup -d "$FS_LOOP" 2>/dev/null || true
  rm -f "$SI_WORK/round-fs.img"
  FS_LOOP=
}

start_daemons() { # MODE (PATH@RELEASE[/KEY=VALUE])
  local mode=${1%@*} rel
  rel=$(mode_release "$1")
  si_select_containerd "$rel"
  if [ "$mode" = snapimport ]; then
    METRICS_PORT=$(si_free_port)
    {
      printf '[registry]\nhosts_dir = "%s"\n\n[metrics]\naddress = "127.0.0.1:%s"\n\n[import]\n' \
        "$SI_HOSTS_DIR" "$METRICS_PORT"
      [ -z "${BENCH_MAX_LAYERS:-}" ] || echo "max_concurrent_layers = $BENCH_MAX_LAYERS"
      [ -z "${BENCH_MAX_PER_REGISTRY:-}" ] || echo "max_concurrent_per_registry = $BENCH_MAX_PER_REGISTRY"
      # As docs/operations.md tells an operator who configures the diff service on 2.x.
      [ "$DIFF" != 1 ] || [ "$rel" != 2.1 ] || echo "diff_service = true"
      # A variant of the mode: one more [import] key, for an A/B in one run.
      mode_variant "$1"
      [ "$AUTH" != 1 ] || printf '\n[cri]\nimage_service_address = "%s"\ncontainerd_address = "%s"\n' \
        "$SI_WORK/cri-proxy.sock" "$SI_WORK/containerd/containerd.sock"
    } >"$SI_WORK/snapimport.toml"
    si_start_snapimport --config "$SI_WORK/snapimport.toml" --log-level info
    export SI_CRI_SNAPSHOTTER=snapimport
    export SI_CRI_ANNOTATIONS=$ANNOTATIONS
    export SI_CONTAINERD_REMOTE_ANNOTATIONS=$([ "$ANNOTATIONS" = 1 ] && echo true || echo false)
    export SI_DIFF_PROXY=0
    [ "$DIFF" != 1 ] || [ "$rel" = 1.6 ] || SI_DIFF_PROXY=1
    export SI_CONTAINERD_DISABLED_EXTRA="io.containerd.content.v1.content"
    export SI_CONTAINERD_EXTRA_CONFIG="[proxy_plugins.snapimport-content]
  type = \"content\"
  address = \"$SI_SNAPIMPORT_SOCK\""
  else
    SI_SNAPIMPORT_SOCK= SI_SNAPIMPORT_PID=
    # A variant of the mode: one more environment variable for containerd.
    SI_CONTAINERD_ENV=$(mode_variant "$1")
    export SI_CONTAINERD_ENV
    export SI_CRI_SNAPSHOTTER=overlayfs SI_DIFF_PROXY=0
    export SI_CONTAINERD_DISABLED_EXTRA=""
    export SI_CONTAINERD_EXTRA_CONFIG=""
  fi
  export SI_CONTAINERD_CRI=1
  si_start_containerd
  # The variant's variable must have reached containerd, or the round measures the plain path
  # under another name.
  if [ -n "${SI_CONTAINERD_ENV:-}" ]; then
    tr '\0' '\n' <"/proc/$SI_CONTAINERD_PID/environ" | grep -qxF "$SI_CONTAINERD_ENV" ||
      si_die "$1: containerd (pid $SI_CONTAINERD_PID) does not have $SI_CONTAINERD_ENV in its environment"
  fi
  unset SI_CONTAINERD_ENV
}

stop_daemons() {
  [ -z "$SI_CONTAINERD_PID" ] || si_stop_pid "$SI_CONTAINERD_PID" containerd 30
  [ -z "${SI_SNAPIMPORT_PID:-}" ] || si_stop_pid "$SI_SNAPIMPORT_PID" snapimport 30
  SI_CONTAINERD_PID= SI_SNAPIMPORT_PID=
  si_unmount_under "$SI_WORK/containerd"
  si_unmount_under "$SI_WORK/snapimport"
  if [ -n "$FS_LOOP" ]; then
    fresh_fs_down "$SI_WORK/containerd" "$SI_WORK/snapimport"
    return 0
  fi
  # Deleting a round's 2 GB or 100k files takes minutes on a busy disk; a rename takes nothing.
  # The old roots go with the work dir at exit, so no deletion runs during a timed round.
  local trash
  trash=$(mktemp -d "$SI_WORK/trash.XXXXXX")
  local d
  for d in containerd snapimport; do
    [ ! -e "$SI_WORK/$d" ] || mv "$SI_WORK/$d" "$trash/$d"
  done
}

# bench_round IMAGE MODE ROUND
run_pull() { # IMG MODE OUT: the pull this run times (BENCH_PULL), its output into OUT
  local img=$1 mode=$2 out=$3
  # With credentials: snapimport's rounds go through its CRI proxy, as kubelet's would.
  local endpoint=unix://$SI_CONTAINERD_SOCK
  local creds=()
  if [ "$AUTH" = 1 ]; then
    creds=(--creds "$CREDS")
    [ "${mode%@*}" != snapimport ] || endpoint=unix://$SI_WORK/cri-proxy.sock
  fi
  if [ "$PULL" = ctr ]; then
    local sn=overlayfs
    [ "${mode%@*}" != snapimport ] || sn=snapimport
    SI_CTR_TIMEOUT=1800 si_ctr -n k8s.io images pull --snapshotter "$sn" ${CREDS:+--user "$CREDS"} \
      "${REF[$img]}" >"$out" 2>&1
  else
    timeout 1800 "$SNAPIMPORT_BIN" pull --image-endpoint "$endpoint" "${creds[@]}" "${REF[$img]}" \
      >"$out" 2>&1
  fi
}

bench_round() {
  local img=$1 mode=$2 round=$3
  local tag
  tag="$img.$(mode_file_tag "$mode").$round"
  fresh_fs_up "$SI_WORK/containerd" "$SI_WORK/snapimport"
  start_daemons "$mode"
  drop_caches
  wait_quiet
  local c0 s0 r0 m0 t0 t1
  m0=$(machine_busy_ticks)
  c0=$(cpu_ticks "$SI_CONTAINERD_PID")
  s0=$([ -n "${SI_SNAPIMPORT_PID:-}" ] && cpu_ticks "$SI_SNAPIMPORT_PID" || echo 0)
  r0=$(cpu_ticks "$SI_REGISTRY_PID")
  t0=$(date +%s.%N)
  local rc=0
  run_pull "$img" "$mode" "$SI_WORK/logs/pull.$tag.out" || rc=$?
  t1=$(date +%s.%N)
  local secs
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  if [ "$rc" -ne 0 ] || { [ "$PULL" = cri ] && ! grep -q "^1 pulled, 0 failed" "$SI_WORK/logs/pull.$tag.out"; }; then
    cat "$SI_WORK/logs/pull.$tag.out" >&2
    si_fail "$mode pull of ${REF[$img]} failed (exit $rc)"
    return 1
  fi
  local cpu_c cpu_s=0 cpu_r hwm=0 imported=- cpu_m
  cpu_m=$(tick_seconds "$m0" "$(machine_busy_ticks)")
  cpu_c=$(tick_seconds "$c0" "$(cpu_ticks "$SI_CONTAINERD_PID")")
  cpu_r=$(tick_seconds "$r0" "$(cpu_ticks "$SI_REGISTRY_PID")")
  if [ "${mode%@*}" = snapimport ]; then
    cpu_s=$(tick_seconds "$s0" "$(cpu_ticks "$SI_SNAPIMPORT_PID")")
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$SI_SNAPIMPORT_PID/status")
    # From the registry, from containerd's writes, or applied by the diff service.
    imported=$(grep -c -E "msg=\"(imported layer|imported layer from containerd's write|applied layer)\"" "$SI_SNAPIMPORT_LOG" || true)
    curl -fsS "http://127.0.0.1:$METRICS_PORT/metrics" >"$SI_WORK/logs/metrics.$tag.txt" 2>/dev/null || true
    if [ "$imported" -ne "${NLAYERS[$img]}" ]; then
      si_warn "snapimport imported $imported of ${NLAYERS[$img]} layers (the rest fell back to containerd); see $SI_SNAPIMPORT_LOG"
    fi
  fi
  local disk
  disk=$({ du -sxm "$SI_WORK/containerd/root" "$SI_WORK/snapimport/root" 2>/dev/null || true; } | awk '{ s += $1 } END { print s }')
  local others
  others=$(awk -v m="$cpu_m" -v a="$cpu_s" -v b="$cpu_c" -v c="$cpu_r" 'BEGIN { o = m - a - b - c; printf "%.1f", o < 0 ? 0 : o }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$img" "$mode" "$round" "$secs" "$hwm" "$cpu_s" "$cpu_c" "$cpu_r" \
    "$imported" "$disk" "$others" >>"$RESULTS"
  si_log "$(printf '%-5s %-10s round %s: %7.2fs  cpu: snapimport %5.1fs containerd %5.1fs registry %5.1fs other processes %5.1fs  peak RSS %s MiB  imported %s/%s  disk %s MB' \
    "$img" "$mode" "$round" "$secs" "$cpu_s" "$cpu_c" "$cpu_r" "$others" "$((hwm / 1024))" "$imported" "${NLAYERS[$img]}" "$disk")"
  stop_daemons
  local f
  for f in snapimport containerd; do
    [ -f "$SI_WORK/logs/$f.log" ] && mv "$SI_WORK/logs/$f.log" "$SI_WORK/logs/$f.$tag.log"
  done
  return 0
}

for img in "${IMAGES[@]}"; do
  for ((r = 1; r <= ROUNDS; r++)); do
    # Rotate which path goes first, so none always runs on a "warmer" machine.
    order=()
    for ((i = 0; i < ${#MODES[@]}; i++)); do order+=("${MODES[$(((i + r - 1) % ${#MODES[@]}))]}"); done
    for mode in "${order[@]}"; do
      si_step "$img: $mode round $r/$ROUNDS" bench_round "$img" "$mode" "$r"
    done
  done
done

# ------------------------------------------------------------------------------------------------
# results

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -F'\t' -v i="$1" -v m="$2" -v c="$3" '$1 == i && $2 == m { print $c }' "$RESULTS"; }

{
  echo
  echo "== snapimport import benchmark: cold $([ "$PULL" = ctr ] && echo "ctr images pull" || echo "CRI pull") + unpack, $ROUNDS rounds each, scale $SCALE, $(nproc) cores, $([ "$AUTH" = 1 ] && echo "private registry, credentials through CRI only" || echo "anonymous registry"), layer labels $([ "$ANNOTATIONS" = 1 ] && echo on || echo off), filesystem $FS, diff service $([ "$DIFF" = 1 ] && echo "on (1.7, 2.1)" || echo off) =="
  echo "   snapimport $("$SNAPIMPORT_BIN" --version 2>/dev/null | head -n1); containerd releases: $(for m in "${MODES[@]}"; do mode_release "$m"; done | sort -u | tr '\n' ' ')"
  for m in "${MODES[@]}"; do
    [ "${m%@*}" = snapimport ] || printf '   %s decompresses gzip with %s\n' "$m" "$(containerd_gzip "$m")"
  done
  for img in "${IMAGES[@]}"; do
    echo
    echo "image $img (${REF[$img]}):"
    cat "${OCI[$img]}/summary.txt"
    for m in "${MODES[@]}"; do
      printf '  %-30s %s\n' "$m runs:" "$(col "$img" "$m" 4 | tr '\n' ' ')"
    done
    for m in "${MODES[@]}"; do
      if [ "${m%@*}" = snapimport ]; then
        printf '  %-30s %8.2f s   (CPU: snapimport %s s, containerd %s s, registry %s s)\n' "$m median:" \
          "$(col "$img" "$m" 4 | median)" "$(col "$img" "$m" 6 | median)" "$(col "$img" "$m" 7 | median)" "$(col "$img" "$m" 8 | median)"
      else
        printf '  %-30s %8.2f s   (CPU: containerd %s s, registry %s s)\n' "$m median:" \
          "$(col "$img" "$m" 4 | median)" "$(col "$img" "$m" 7 | median)" "$(col "$img" "$m" 8 | median)"
      fi
    done
    # Every snapimport path against every native path of the run; the goals are the issues'.
    # Labelled CRI pulls: the import floor. Pulls without labels ("Every pull at importer speed"):
    # never slower than containerd (1.6's ctr pull, where only the content path helps), else half.
    local_goal() {
      if [ "$ANNOTATIONS" = 1 ]; then
        case "$1" in containerd@1.6) echo 0.25 ;; containerd@2.1) echo 0.30 ;; *) echo - ;; esac
      elif [ "$PULL" = ctr ] && [ "$1" = containerd@1.6 ]; then
        echo 1.0
      else
        echo 0.5
      fi
    }
    for sm in "${MODES[@]}"; do
      [ "${sm%@*}" = snapimport ] || continue
      for cm in "${MODES[@]}"; do
        [ "${cm%@*}" = containerd ] || continue
        goal=$(local_goal "$cm")
        [ "$goal" = - ] && goal="(no goal)" || goal="(goal <= $goal)"
        printf '  %-30s %8.3f   %s\n' "ratio $sm / $cm:" \
          "$(awk -v s="$(col "$img" "$sm" 4 | median)" -v c="$(col "$img" "$cm" 4 | median)" 'BEGIN { print s / c }')" \
          "$goal"
      done
      printf '  %-30s %8d MiB (max over rounds)\n' "$sm peak RSS:" "$(($(col "$img" "$sm" 5 | sort -n | tail -n1) / 1024))"
      printf '  %-30s %s\n' "$sm layers imported:" "$(col "$img" "$sm" 9 | tr '\n' ' ')(of ${NLAYERS[$img]})"
    done
    for m in "${MODES[@]}"; do
      printf '  %-30s %s\n' "$m CPU-s of other procs:" "$(col "$img" "$m" 11 | tr '\n' ' ')"
    done
  done
} | tee "$SI_WORK/summary.txt"

# ------------------------------------------------------------------------------------------------
# floor: what the unpacker alone needs for each image's layers on this machine

floor_report() { # IMAGE
  local img=$1 oci=${OCI[$1]} m d out t wall user sys cpu_sum=0 max_wall=0 i=0 m0 machine machine_sum=0
  m=$(si_image_manifest "$oci" latest)
  echo
  echo "floor for image $img: each layer through \`snapimport unpack\` alone (syncfs included), caches dropped, filesystem: $FS"
  echo "  (machine: CPU-s of the whole machine meanwhile, the unpack plus the kernel's write-back threads)"
  printf '  %-6s %-14s %10s %8s %8s %8s %8s\n' layer digest "MB gzip" wall user sys machine
  fresh_fs_up "$SI_WORK/floor"
  for d in $(jq -r '.layers[].digest' "$m"); do
    out=$SI_WORK/floor/$img-$i
    drop_caches
    m0=$(machine_busy_ticks)
    t=$( { /usr/bin/time -f '%e %U %S' "$SNAPIMPORT_BIN" unpack "$oci/blobs/sha256/${d#sha256:}" "$out" >/dev/null; } 2>&1 | tail -n1)
    machine=$(tick_seconds "$m0" "$(machine_busy_ticks)" 2)
    read -r wall user sys <<<"$t"
    printf '  %-6s %-14s %10.1f %8.2f %8.2f %8.2f %8.2f\n' "$i" "${d:7:12}" \
      "$(awk -v b="$(stat -c %s "$oci/blobs/sha256/${d#sha256:}")" 'BEGIN { print b / 1e6 }')" "$wall" "$user" "$sys" "$machine"
    cpu_sum=$(awk -v a="$cpu_sum" -v u="$user" -v s="$sys" 'BEGIN { print a + u + s }')
    machine_sum=$(awk -v a="$machine_sum" -v c="$machine" 'BEGIN { print a + c }')
    max_wall=$(awk -v a="$max_wall" -v w="$wall" 'BEGIN { print (w > a) ? w : a }')
    # Deleted with the work dir (or its filesystem), not while timing.
    [ -n "$FS_LOOP" ] || mv "$out" "$SI_WORK/trash-floor-$img-$i"
    i=$((i + 1))
  done
  fresh_fs_down "$SI_WORK/floor"
  local floor
  floor=$(awk -v c="$cpu_sum" -v n="$(nproc)" -v w="$max_wall" 'BEGIN { f = c / n; printf "%.2f", (w > f) ? w : f }')
  printf '  %-30s %8.2f CPU-s in all; /%d cores = %.2f s; largest layer alone %.2f s\n' "unpack CPU:" "$cpu_sum" "$(nproc)" \
    "$(awk -v c="$cpu_sum" -v n="$(nproc)" 'BEGIN { print c / n }')" "$max_wall"
  printf '  %-30s %8.2f s\n' "floor:" "$floor"
  # The write-back of the unpacked files is CPU too, spent by kernel threads no process is
  # charged for; with it, the floor a pull on this machine can reach.
  printf '  %-30s %8.2f CPU-s in all; /%d cores = %.2f s\n' "machine CPU of the unpacks:" "$machine_sum" "$(nproc)" \
    "$(awk -v c="$machine_sum" -v n="$(nproc)" 'BEGIN { print c / n }')"
  local mode
  for mode in "${MODES[@]}"; do
    [ "${mode%@*}" = snapimport ] || continue
    printf '  %-30s %8.2f s = %.2fx the floor\n' "$mode median:" "$(col "$img" "$mode" 4 | median)" \
      "$(awk -v s="$(col "$img" "$mode" 4 | median)" -v f="$floor" 'BEGIN { print (f > 0) ? s / f : 0 }')"
  done
}
if [ "${BENCH_FLOOR:-1}" = 1 ]; then
  for img in "${IMAGES[@]}"; do floor_report "$img"; done | tee -a "$SI_WORK/summary.txt"
fi

# ------------------------------------------------------------------------------------------------
# profile: one extra snapimport round of the first image, whole machine sampled (perf cpu-clock)

profile_report() {
  local data=$SI_WORK/perf.data pid=$1 wall=$2
  local rep=$SI_WORK/perf-report
  perf report -i "$data" -g none --no-children --sort comm --stdio 2>/dev/null | grep -v '^#' | grep '%' |
    head -n 12 >"$rep.comm" || true
  perf report -i "$data" -g none --no-children --pid "$pid" --sort dso --stdio 2>/dev/null |
    grep -v '^#' | grep '%' | head -n 12 >"$rep.dso" || true
  perf report -i "$data" -g none --no-children --pid "$pid" --sort dso,sym --stdio 2>/dev/null |
    grep -v '^#' | grep '%' >"$rep.sym" || true
  local total
  total=$(perf report -i "$data" -g none --sort comm --stdio 2>/dev/null | awk '/^# Samples:/ { print $3; exit }')
  echo
  echo "== profile: $pmode round of image ${IMAGES[0]} ($wall s wall), perf record -a -e cpu-clock -F 499 =="
  echo "-- whole machine, share of busy samples by command ($total samples; $(nproc) cores x $wall s = $(awk -v w="$wall" -v n="$(nproc)" 'BEGIN { printf "%d", n * w * 499 }') possible) --"
  cat "$rep.comm"
  echo "-- snapimport (pid $pid) by object, share of all samples (kernel time: the rest of its share) --"
  cat "$rep.dso"
  echo "-- snapimport by stage (share of its own samples; symbols mapped to stages) --"
  awk '
    { pct = $1; sub(/%/, "", pct); line = $0
      st = "other"
      if (line ~ /isal|inflate|igzip|decode_huffman|gzip/) st = "gzip inflate (ISA-L)"
      else if (line ~ /sha256|SHA256|sha_block|sha256_block|libcrypto/) st = "sha256 (libcrypto: layer digest + diff_id)"
      else if (line ~ /archive_|libarchive/) st = "tar parsing (libarchive)"
      else if (line ~ /curl|Curl_|nghttp|http/) st = "HTTP client (libcurl)"
      else if (line ~ /tcp_|skb|sock_|inet_|ip_|__netif|net_rx|loopback|_copy_to_iter|copy_user|do_softirq|napi|recvmsg|sendmsg/) st = "network receive (kernel)"
      else if (line ~ /ext4|jbd2|xfs_|btrfs|generic_perform_write|iomap|filemap|folio|page_cache|pagecache|add_to_page|mark_buffer|block_write|__block|writeback|sync_|shmem/) st = "file writes / page cache (kernel)"
      else if (line ~ /openat|do_filp_open|path_|link_path|lookup|dentry|d_alloc|inode|mkdir|fchown|chmod|setattr|xattr|utimes|utime|do_sys_open|namei|fsnotify|security_/) st = "metadata syscalls (kernel)"
      else if (line ~ /memcpy|memmove|memset/) st = "memcpy/memset"
      else if (line ~ /sqlite/) st = "sqlite"
      else if (line ~ /futex|schedule|finish_task_switch|__sched|pthread|mutex/) st = "locks / scheduling"
      else if (line ~ /\[kernel/) st = "other kernel"
      s[st] += pct; all += pct }
    END { for (k in s) printf "  %6.1f%%  %s\n", all ? 100 * s[k] / all : 0, k }' "$rep.sym" | sort -rn
  echo "-- snapimport top symbols --"
  head -n 25 "$rep.sym" | cut -c1-150
}

if [ "$PROFILE" = 1 ]; then
  if ! command -v perf >/dev/null || ! perf record -e cpu-clock -o "$SI_WORK/perf-probe.data" true >/dev/null 2>&1; then
    si_warn "perf cannot record cpu-clock samples here; skipping the profile"
  else
    img=${IMAGES[0]}
    # The first snapimport path of the run, pulled as its rounds were.
    pmode=snapimport@1.6
    for m in "${MODES[@]}"; do
      if [ "${m%@*}" = snapimport ]; then pmode=$m; break; fi
    done
    si_log "==> profile: one more (untimed) $pmode round of $img under perf record -a"
    fresh_fs_up "$SI_WORK/containerd" "$SI_WORK/snapimport"
    start_daemons "$pmode"
    drop_caches
    pid=$SI_SNAPIMPORT_PID
    perf record -a -g -e cpu-clock -F 499 -o "$SI_WORK/perf.data" >"$SI_WORK/logs/perf-record.log" 2>&1 &
    perf_pid=$!
    sleep 1
    t0=$(date +%s.%N)
    run_pull "$img" "$pmode" "$SI_WORK/logs/pull.profile.out" ||
      si_warn "profiled pull failed: $(cat "$SI_WORK/logs/pull.profile.out")"
    wall=$(si_elapsed "$t0")
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
    {
      profile_report "$pid" "$wall"
      # Layer timeline: when each layer's import finished (committed), relative to the pull's start.
      echo "-- snapimport layer commits (from its log), seconds after the pull started --"
      awk -v t0="$t0" '/msg="(imported layer|imported layer from containerd.s write|applied layer)"/ {
          match($0, /time=[^ ]+/); ts = substr($0, RSTART + 5, RLENGTH - 5)
          match($0, /layer=sha256:[0-9a-f]+/); l = substr($0, RSTART + 13, 12)
          match($0, /bytes=[0-9]+/); b = substr($0, RSTART + 6, RLENGTH - 6)
          cmd = "date -d \"" ts "\" +%s.%N"; cmd | getline e; close(cmd)
          how = /applied layer/ ? "applied (diff service), MB of tar" : (/containerd.s write/ ? "from containerd\047s write, MB compressed" : "from the registry, MB compressed")
          printf "  +%6.2fs  layer %s  %5d  %s\n", e - t0, l, b / 1000000, how }' "$SI_SNAPIMPORT_LOG"
      grep -E '^snapimport_layer_import_duration_seconds_(sum|count)' <(curl -fsS "http://127.0.0.1:$METRICS_PORT/metrics" 2>/dev/null) |
        sed 's/^/  /' || true
    } | tee -a "$SI_WORK/summary.txt"
    stop_daemons
  fi
fi

si_print_timings
si_log "results: $RESULTS; summary: $SI_WORK/summary.txt (KEEP=1 keeps the work dir)"
mkdir -p "$BENCH_WORK/results"
cp "$SI_WORK/summary.txt" "$BENCH_WORK/results/summary-$(date +%Y%m%d-%H%M%S).txt"
cp "$RESULTS" "$BENCH_WORK/results/rounds-$(date +%Y%m%d-%H%M%S).tsv"
