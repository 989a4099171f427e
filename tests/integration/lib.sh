# shellcheck shell=bash
# Reusable pieces for snapimport's integration tests and the demo. Source it, then call
# si_init_workdir first: everything afterwards lives under one temporary work dir ($SI_WORK), on
# loopback only, and an EXIT trap stops every process started here, unmounts whatever is mounted
# under the work dir and removes it (unless KEEP=1).
#
#   si_init_workdir [name]         create $SI_WORK and install the cleanup trap
#   si_start_registry [HTPASSWD]   distribution registry on 127.0.0.1:<free port> -> $SI_REGISTRY
#   si_build_test_image DIR TAG    three-layer busybox image in an OCI layout (whiteout + opaque dir)
#   si_verify_test_image DIR TAG   check the layer tarballs really hold the whiteout entries
#   si_push_image DIR TAG REF      push an OCI layout tag to the registry (the one place to change)
#   si_write_hosts_dir HOSTPORT    containerd hosts.toml dir for a plain-http registry -> $SI_HOSTS_DIR
#   si_start_snapimport            `$SNAPIMPORT_BIN serve` -> $SI_SNAPIMPORT_SOCK
#   si_start_containerd            private containerd (proxy plugin wired in) -> $SI_CONTAINERD_SOCK
#   si_ctr ARGS...                 ctr against the private containerd
#   si_ctr_run NS ARGS...          ctr run (FIFOs under the work dir; use this, not `ctr run`)
#   si_backend_list SOCK [SNAPSHOTTER]  snapshots straight from a snapshots.v1 socket (name parent kind)
#   si_chain_ids DIR TAG           chain IDs of an OCI layout image, bottom layer first
#   si_step DESC CMD...            run a step, print its duration, remember it for si_print_timings
#
# Knobs (environment):
#   KEEP=1                      leave the work dir and the processes running at exit, print how to clean up
#   SI_WORK_PARENT              where the work dir is created (default ${TMPDIR:-/tmp})
#   SI_CONTAINERD_CRI=1         keep the CRI plugin enabled (on the same socket; snapshotter
#                               $SI_CRI_SNAPSHOTTER (default snapimport), snapshot annotations on,
#                               registry config_path $SI_HOSTS_DIR, sandbox $SI_CRI_SANDBOX_IMAGE)
#   SI_CONTAINERD_EXTRA_CONFIG  TOML appended verbatim to the containerd config
#   SI_CONTAINERD_DISABLED_EXTRA  more plugin IDs (space-separated) for disabled_plugins, e.g.
#                               io.containerd.content.v1.content when snapimport is the content store
#   SI_CONTAINERD_PRIVATE_RUN=0 run containerd in the host mount namespace (see si_start_containerd)
#   SI_CONTAINERD_VERSION       which containerd the tests drive: 1.6 (Debian 12's, the default), 1.7
#                               or 2.1 (fetched by scripts/fetch-containerd.sh, put first on PATH
#                               with their ctr and shim); 2.x gets a config version 3
#   SI_CONTAINERD_REMOTE_ANNOTATIONS=false  1.7/2.x: the proxy's exports do not ask for the CRI
#                               layer labels (2.1's transfer pulls, ctr's too, then carry none)
#   SI_CRI_STATS_PERIOD         seconds between CRI's snapshot usage scans (ImageFsInfo; default 10)
#   SI_CRI_ANNOTATIONS=0        1.6/1.7: CRI without snapshot annotations (disable_snapshot_annotations
#                               = true), so its Prepares carry no CRI layer labels
#   SI_CRI_PULL=transfer|local  2.1 only: CRI pulls through the transfer service (default: snapshot
#                               annotations off in CRI, on through the proxy's exports) or the local
#                               pull (disable_snapshot_annotations = false)
#   SI_VERBOSE=1                print commands as steps run
#
# Every function returns non-zero (with a message on stderr) when it fails; callers run with set -e.

if [ -n "${SI_LIB_LOADED:-}" ]; then return 0; fi
SI_LIB_LOADED=1

SI_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC2034 # for scripts that source this file
SI_REPO_ROOT=$(cd "$SI_LIB_DIR/../.." && pwd)
SI_PYTHON=$(command -v /usr/bin/python3 || command -v python3 || true)

SI_WORK=
SI_PIDS=()          # every background process we started, stopped in reverse order
SI_PID_NAMES=()
SI_TIMINGS=()       # "seconds<TAB>description" of each si_step
SI_CONTAINERD_PID=
SI_CLEANED=0
SI_STEP=            # the si_step running now, for the failure report
SI_STEP_START=
SI_LOGS_DUMPED=0

# ----------------------------------------------------------------------------------------------
# which containerd

# si_select_containerd [VERSION]: puts the containerd release VERSION (default
# $SI_CONTAINERD_VERSION, else 1.6) first on PATH, so containerd, ctr and containerd-shim-runc-v2
# all come from it, and sets SI_CONTAINERD_VERSION and SI_CONTAINERD_MAJOR. May be called again
# to switch releases (the benchmark does).
SI_BASE_PATH=$PATH
si_select_containerd() {
  SI_CONTAINERD_VERSION=${1:-${SI_CONTAINERD_VERSION:-1.6}}
  case "$SI_CONTAINERD_VERSION" in
    1.6) SI_CONTAINERD_BIN_DIR= ;;
    1.7 | 2.1)
      local line
      line=$("$SI_REPO_ROOT/scripts/fetch-containerd.sh" "$SI_CONTAINERD_VERSION") ||
        si_die "containerd $SI_CONTAINERD_VERSION is not available (scripts/fetch-containerd.sh failed)"
      SI_CONTAINERD_BIN_DIR=$(awk '{ print $2 }' <<<"$line")
      ;;
    *) si_die "SI_CONTAINERD_VERSION=$SI_CONTAINERD_VERSION: expected 1.6, 1.7 or 2.1" ;;
  esac
  PATH=${SI_CONTAINERD_BIN_DIR:+$SI_CONTAINERD_BIN_DIR:}$SI_BASE_PATH
  SI_CONTAINERD_MAJOR=${SI_CONTAINERD_VERSION%%.*}
  export PATH SI_CONTAINERD_VERSION
}

# ----------------------------------------------------------------------------------------------
# messages

si_ts() { date +%H:%M:%S; }
si_log() { printf '[%s] %s\n' "$(si_ts)" "$*" >&2; }
si_warn() { printf '[%s] WARNING: %s\n' "$(si_ts)" "$*" >&2; }
si_fail() {
  printf '[%s] FAILED: %s\n' "$(si_ts)" "$*" >&2
  return 1
}
si_die() {
  printf '[%s] FATAL: %s\n' "$(si_ts)" "$*" >&2
  exit 1
}

# si_step DESC CMD... : runs CMD, prints how long it took and remembers it for si_print_timings.
# Call it as a plain command (not under if, !, || or &&): bash turns set -e off inside anything
# run in such a context, so a failing command in the middle of a lib function would go unnoticed.
# Called plainly, a failure ends the script at once and the EXIT trap reports which step failed,
# after how long, with the tails of the logs.
si_step() {
  local desc=$1
  shift
  si_log "==> $desc"
  [ "${SI_VERBOSE:-0}" = 1 ] && si_log "    \$ $*"
  SI_STEP=$desc
  SI_STEP_START=$(date +%s.%N)
  local rc=0
  "$@"
  rc=$? # reached with rc != 0 only when the caller turned set -e off
  local secs
  secs=$(si_elapsed "$SI_STEP_START")
  SI_STEP=
  SI_TIMINGS+=("$secs"$'\t'"$desc")
  if [ "$rc" -ne 0 ]; then
    si_log "<== FAILED after ${secs}s (exit $rc): $desc"
    return "$rc"
  fi
  si_log "<== ok (${secs}s): $desc"
}

si_elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }

si_print_timings() {
  local t
  printf '\n%-9s %s\n' "seconds" "step" >&2
  for t in "${SI_TIMINGS[@]}"; do
    printf '%9s %s\n' "${t%%$'\t'*}" "${t#*$'\t'}" >&2
  done
}

# si_dump_logs [LINES]: tails of the logs under the work dir: the registry's briefly (it logs every
# request), then any others, then snapimport's and containerd's last, where they are easiest to see.
si_dump_logs() {
  local n=${1:-40} f
  [ -n "$SI_WORK" ] && [ -d "$SI_WORK/logs" ] || return 0
  local -a order=("$SI_WORK/logs/registry.log")
  for f in "$SI_WORK"/logs/*; do
    case "${f##*/}" in registry.log | snapimport.log | containerd.log) ;; *) order+=("$f") ;; esac
  done
  order+=("$SI_WORK/logs/snapimport.log" "$SI_WORK/logs/containerd.log")
  for f in "${order[@]}"; do
    [ -s "$f" ] || continue
    local lines=$n
    [ "${f##*/}" = registry.log ] && lines=10
    printf '\n----- last %s lines of %s -----\n' "$lines" "$f" >&2
    tail -n "$lines" "$f" | cut -c1-600 >&2
  done
  printf -- '----- end of logs -----\n' >&2
  local i pid st
  for ((i = 0; i < ${#SI_PIDS[@]}; i++)); do
    pid=${SI_PIDS[$i]}
    if si_alive "$pid"; then
      st=running
    else
      st=0
      wait "$pid" 2>/dev/null || st=$?
      st="NOT RUNNING (exit status $st)"
    fi
    printf '%-11s pid %-7s %s\n' "${SI_PID_NAMES[$i]}" "$pid" "$st" >&2
  done
  echo >&2
  SI_LOGS_DUMPED=1
}

# si_wait_for DESC TIMEOUT_SECONDS CMD... : polls CMD every 0.1 s.
si_wait_for() {
  local desc=$1 timeout=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  while ! "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      si_fail "timed out after ${timeout}s waiting for $desc"
      return 1
    fi
    sleep 0.1
  done
}

si_require() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || si_die "'$c' is not installed (run scripts/setup.sh)"
  done
}

# ----------------------------------------------------------------------------------------------
# work dir, processes and cleanup

# si_init_workdir [NAME]: creates $SI_WORK (0700) and installs the cleanup trap.
si_init_workdir() {
  local name=${1:-snapimport-it}
  local parent=${SI_WORK_PARENT:-${TMPDIR:-/tmp}}
  mkdir -p "$parent"
  SI_WORK=$(mktemp -d "$parent/$name.XXXXXX")
  chmod 0700 "$SI_WORK"
  mkdir -p "$SI_WORK/logs"
  # A unix socket path must fit in 108 bytes; ours are at most ~40 bytes below the work dir.
  if [ "${#SI_WORK}" -gt 60 ]; then
    si_warn "work dir path $SI_WORK is long; unix socket paths under it may not fit"
  fi
  trap 'si_on_exit $?' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  si_log "work dir: $SI_WORK"
}

# si_track NAME PID: remember a process so cleanup stops it.
si_track() {
  SI_PID_NAMES+=("$1")
  SI_PIDS+=("$2")
  printf '%s %s\n' "$2" "$1" >>"$SI_WORK/pids"
}

si_alive() { kill -0 "$1" 2>/dev/null; }

# si_stop_pid PID NAME [GRACE]: SIGTERM, wait, then SIGKILL.
si_stop_pid() {
  local pid=$1 name=$2 grace=${3:-10} i
  si_alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    si_alive "$pid" || break
    sleep 0.1
  done
  if si_alive "$pid"; then
    si_warn "$name (pid $pid) ignored SIGTERM for ${grace}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  wait "$pid" 2>/dev/null || true
}

# Processes whose command line mentions PATTERN (a path under our work dir, so never anyone else's).
si_pids_mentioning() {
  local pattern=$1 p cmd
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [ "$p" = "$$" ] && continue
    cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") || continue
    case "$cmd" in *"$pattern"*) echo "$p" ;; esac
  done
}

# Mount points under DIR in the mount namespace of PID (default: ours), deepest first.
si_mounts_under() {
  local dir=$1 pid=${2:-self}
  awk -v d="$dir/" '{ mp = $5; gsub(/\\040/, " ", mp); if (index(mp, d) == 1) print mp }' \
    "/proc/$pid/mountinfo" 2>/dev/null | awk '{ print length($0) "\t" $0 }' | sort -rn | cut -f2-
}

si_unmount_under() {
  local dir=$1 pid=${2:-} mp
  local -a enter=()
  [ -n "$pid" ] && enter=(nsenter -t "$pid" -m --)
  while IFS= read -r mp; do
    [ -n "$mp" ] || continue
    "${enter[@]}" umount "$mp" 2>/dev/null || "${enter[@]}" umount -l "$mp" 2>/dev/null ||
      si_warn "could not unmount $mp"
  done < <(si_mounts_under "$dir" "${pid:-self}")
}

# Tasks left behind (a failed run) are killed through containerd, so the shims exit.
si_containerd_kill_tasks() {
  [ -n "${SI_CONTAINERD_SOCK:-}" ] && [ -S "$SI_CONTAINERD_SOCK" ] || return 0
  local ns id
  for ns in $(timeout 10 ctr --address "$SI_CONTAINERD_SOCK" namespaces ls -q 2>/dev/null); do
    for id in $(timeout 10 ctr --address "$SI_CONTAINERD_SOCK" -n "$ns" tasks ls -q 2>/dev/null); do
      timeout 10 ctr --address "$SI_CONTAINERD_SOCK" -n "$ns" tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
      timeout 10 ctr --address "$SI_CONTAINERD_SOCK" -n "$ns" tasks rm -f "$id" >/dev/null 2>&1 || true
    done
  done
}

si_cleanup() {
  [ "$SI_CLEANED" = 1 ] && return 0
  SI_CLEANED=1
  [ -n "$SI_WORK" ] && [ -d "$SI_WORK" ] || return 0
  si_log "cleaning up $SI_WORK"
  si_containerd_kill_tasks
  # Mounts inside containerd's private mount namespace (container rootfs, temp mounts).
  if [ -n "$SI_CONTAINERD_PID" ] && si_alive "$SI_CONTAINERD_PID"; then
    si_unmount_under "$SI_WORK" "$SI_CONTAINERD_PID"
  fi
  local i
  for ((i = ${#SI_PIDS[@]} - 1; i >= 0; i--)); do
    si_stop_pid "${SI_PIDS[$i]}" "${SI_PID_NAMES[$i]}"
  done
  # Shims (and anything else) that containerd started for this work dir only.
  local p
  for p in $(si_pids_mentioning "$SI_WORK/"); do
    si_warn "stopping leftover process $p: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"
    si_stop_pid "$p" "leftover $p" 3
  done
  si_unmount_under "$SI_WORK"
  if [ -n "$(si_mounts_under "$SI_WORK")" ]; then
    si_warn "still mounted under $SI_WORK, not removing it:"
    si_mounts_under "$SI_WORK" >&2
    return 1
  fi
  # Loop devices over files in the work dir (a round's filesystem that a failure left attached):
  # unmounted above, but still holding the file and a /dev/loopN until detached.
  local dev back
  while read -r dev back; do
    case "$back" in "$SI_WORK"/*) losetup -d "$dev" 2>/dev/null || si_warn "could not detach $dev ($back)" ;; esac
  done < <(losetup -l -n -O NAME,BACK-FILE 2>/dev/null || true)
  rm -rf --one-file-system "$SI_WORK" || si_warn "could not remove $SI_WORK completely"
}

si_on_exit() {
  local rc=$1
  trap - EXIT INT TERM
  set +e
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
    if [ -n "$SI_STEP" ]; then
      si_log "<== FAILED after $(si_elapsed "$SI_STEP_START")s (exit $rc): $SI_STEP"
    fi
    [ "$SI_LOGS_DUMPED" = 1 ] || si_dump_logs 60
  fi
  if [ "${KEEP:-0}" = 1 ] && [ -n "$SI_WORK" ]; then
    si_print_keep_instructions
    exit "$rc"
  fi
  si_cleanup || true
  exit "$rc"
}

si_print_keep_instructions() {
  local i pids=""
  for ((i = ${#SI_PIDS[@]} - 1; i >= 0; i--)); do
    si_alive "${SI_PIDS[$i]}" && pids+="${SI_PIDS[$i]} "
  done
  {
    echo
    echo "KEEP=1: everything is left running and on disk."
    echo "  work dir:    $SI_WORK   (logs in $SI_WORK/logs)"
    if [ -n "${SI_REGISTRY_PID:-}" ]; then
      echo "  registry:    pid $SI_REGISTRY_PID, http://$SI_REGISTRY/v2/_catalog"
    fi
    if [ -n "${SI_SNAPIMPORT_PID:-}" ]; then
      echo "  snapimport:  pid $SI_SNAPIMPORT_PID, socket $SI_SNAPIMPORT_SOCK, root $SI_SNAPIMPORT_ROOT"
    fi
    if [ -n "$SI_CONTAINERD_PID" ]; then
      echo "  containerd:  pid $SI_CONTAINERD_PID, config $SI_CONTAINERD_CONFIG"
      echo "    ctr --address $SI_CONTAINERD_SOCK -n ${SI_NAMESPACE:-test} images ls"
      echo "    ctr --address $SI_CONTAINERD_SOCK -n ${SI_NAMESPACE:-test} snapshots --snapshotter snapimport ls"
      echo "    ctr --address $SI_CONTAINERD_SOCK -n ${SI_NAMESPACE:-test} run --fifo-dir $SI_WORK/containerd/fifo --rm -t --snapshotter snapimport IMAGE ID /bin/sh"
      echo "    (containerd has a private /run; \`ctr run\` needs that --fifo-dir)"
    fi
    echo "To clean up by hand:"
    echo "  kill $pids  # containerd first; its container mounts live in its own mount namespace"
    echo "  grep ' $SI_WORK/' /proc/self/mountinfo   # unmount anything listed (umount -R PATH)"
    echo "  rm -rf --one-file-system $SI_WORK"
  } >&2
}

# si_free_port: a TCP port on 127.0.0.1 that nobody listens on right now.
si_free_port() {
  if [ -n "$SI_PYTHON" ]; then
    "$SI_PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
    return
  fi
  local p
  while :; do
    p=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || {
      echo "$p"
      return
    }
  done
}

# ----------------------------------------------------------------------------------------------
# registry

# si_start_registry [HTPASSWD_FILE]: sets SI_REGISTRY_PORT, SI_REGISTRY (127.0.0.1:PORT),
# SI_REGISTRY_PID and SI_REGISTRY_LOG. With HTPASSWD_FILE the registry wants htpasswd Basic auth;
# without, $SI_REGISTRY_AUTH_YAML (when set) is its whole `auth:` section (token auth, say).
# It logs one access line per request (method, URL, status, user agent).
si_start_registry() {
  local htpasswd=${1:-}
  si_require docker-registry curl
  local dir=$SI_WORK/registry attempt port auth="" up=200
  mkdir -p "$dir/data"
  SI_REGISTRY_LOG=$SI_WORK/logs/registry.log
  if [ -n "$htpasswd" ]; then
    auth="auth:
  htpasswd:
    realm: snapimport-test
    path: $htpasswd"
    up=401  # /v2/ refuses the anonymous probe: the registry is up all the same
  elif [ -n "${SI_REGISTRY_AUTH_YAML:-}" ]; then
    auth=$SI_REGISTRY_AUTH_YAML  # another auth: section (token auth)
    up=401
  fi
  for attempt in 1 2 3; do
    port=$(si_free_port)
    cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
$auth
http:
  addr: 127.0.0.1:$port
  headers:
    X-Content-Type-Options: [nosniff]
EOF
    docker-registry serve "$dir/config.yml" >>"$SI_REGISTRY_LOG" 2>&1 &
    local pid=$!
    local deadline=$((SECONDS + 20)) code
    while si_alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do
      code=$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/" 2>/dev/null || true)
      if [ "$code" = "$up" ]; then
        si_track registry "$pid"
        SI_REGISTRY_PID=$pid
        # shellcheck disable=SC2034 # for scripts that source this file
        SI_REGISTRY_PORT=$port
        SI_REGISTRY=127.0.0.1:$port
        si_log "registry listening on http://$SI_REGISTRY (pid $pid, storage $dir/data${htpasswd:+, htpasswd auth})"
        return 0
      fi
      sleep 0.1
    done
    si_stop_pid "$pid" registry 2
    si_warn "registry did not come up on port $port (attempt $attempt)"
  done
  tail -n 20 "$SI_REGISTRY_LOG" >&2
  si_fail "could not start docker-registry"
}

# ----------------------------------------------------------------------------------------------
# test image

# File contents the tests assert on.
SI_IMG_MARKER="snapimport top layer marker: layer 3 of 3"
SI_IMG_OPQ_NEW="new-in-layer3.txt"
SI_IMG_DELETED=/etc/deleted-by-layer3.txt

# si_build_test_image OCI_DIR TAG
#   layer 1: /bin/busybox (static) + applet symlinks, /etc files, /data/keep, the file layer 3 deletes
#   layer 2: more files, /data/opq/{old-a.txt,old-b.txt,sub/old-c.txt}
#   layer 3: .wh. whiteout of $SI_IMG_DELETED, /data/opq opaque (.wh..wh..opq) with one new file,
#            and /top-marker.txt. umoci cannot write an opaque marker, so this layer is a GNU tar
#            archive added with `umoci raw add-layer`.
si_build_test_image() {
  local oci=$1 tag=$2
  si_require umoci tar gzip jq
  local busybox
  busybox=$(command -v busybox || true)
  [ -n "$busybox" ] || si_die "busybox-static is not installed"
  # A dynamically linked busybox would not run in the image (no libc there).
  if command -v file >/dev/null && ! file -L "$busybox" | grep -q 'statically linked'; then
    si_die "$busybox is not statically linked (install busybox-static)"
  fi
  local work
  work=$(mktemp -d "$SI_WORK/imgbuild.XXXXXX")
  local bundle=$work/bundle
  [ -d "$oci" ] || umoci init --layout "$oci"
  umoci new --image "$oci:$tag"
  umoci config --image "$oci:$tag" --config.cmd /bin/sh --config.env PATH=/bin:/usr/bin \
    --config.workingdir / --author "snapimport tests"
  umoci unpack --image "$oci:$tag" "$bundle"
  local r=$bundle/rootfs

  # layer 1
  mkdir -p "$r/bin" "$r/etc" "$r/data/keep" "$r/root" "$r/tmp" "$r/proc" "$r/sys" "$r/dev" "$r/usr/bin"
  chmod 1777 "$r/tmp"
  chmod 0700 "$r/root"
  install -m 0755 "$busybox" "$r/bin/busybox"
  local a
  for a in sh cat ls echo test [ printf find wc head tail grep sort tr stat readlink id env sleep \
    true false uname hostname mkdir rm touch du df; do
    ln -s busybox "$r/bin/$a"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$r/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
  echo "hello from layer 1" >"$r/etc/hello.txt"
  echo "this file is deleted by a whiteout in layer 3" >"$r$SI_IMG_DELETED"
  echo "layer 1 file that stays" >"$r/data/keep/l1.txt"
  umoci repack --refresh-bundle --image "$oci:$tag" --history.created_by "layer 1: busybox" "$bundle"

  # layer 2
  mkdir -p "$r/data/opq/sub" "$r/usr/share/snapimport"
  echo "old a (layer 2, hidden by the opaque dir in layer 3)" >"$r/data/opq/old-a.txt"
  echo "old b (layer 2, hidden by the opaque dir in layer 3)" >"$r/data/opq/old-b.txt"
  echo "old c (layer 2, hidden by the opaque dir in layer 3)" >"$r/data/opq/sub/old-c.txt"
  echo "hello from layer 2" >"$r/etc/layer2.txt"
  echo "layer 2 data" >"$r/usr/share/snapimport/layer2.txt"
  umoci repack --refresh-bundle --image "$oci:$tag" --history.created_by "layer 2: files and /data/opq" "$bundle"

  # layer 3: whiteout, opaque marker, new file, marker file (GNU tar, added verbatim)
  local l3=$work/layer3
  mkdir -p "$l3/etc" "$l3/data/opq"
  chmod 0755 "$l3" "$l3/etc" "$l3/data" "$l3/data/opq"
  : >"$l3/etc/.wh.$(basename "$SI_IMG_DELETED")"
  : >"$l3/data/opq/.wh..wh..opq"
  echo "new file in the opaque dir (layer 3)" >"$l3/data/opq/$SI_IMG_OPQ_NEW"
  echo "$SI_IMG_MARKER" >"$l3/top-marker.txt"
  chmod 0644 "$l3/etc/.wh."* "$l3/data/opq/"* "$l3/data/opq/.wh..wh..opq" "$l3/top-marker.txt"
  tar -C "$l3" --create --file "$work/layer3.tar" --format=posix \
    --pax-option=delete=atime,delete=ctime --sort=name --numeric-owner --owner=0 --group=0 \
    --mtime=@1700000000 etc data top-marker.txt
  umoci raw add-layer --image "$oci:$tag" --history.created_by "layer 3: whiteout + opaque dir" \
    "$work/layer3.tar"
  umoci gc --layout "$oci"
  rm -rf "$work"
}

# si_image_manifest OCI_DIR TAG: prints the manifest blob path.
si_image_manifest() {
  local oci=$1 tag=$2 d
  d=$(jq -r --arg t "$tag" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | .digest' "$oci/index.json" | head -n1)
  [ -n "$d" ] || {
    si_fail "tag $tag not found in $oci/index.json"
    return 1
  }
  echo "$oci/blobs/${d%%:*}/${d#*:}"
}

# si_image_layers OCI_DIR TAG: prints one layer blob path per line, bottom first.
si_image_layers() {
  local oci=$1 tag=$2 m
  m=$(si_image_manifest "$oci" "$tag") || return 1
  jq -r '.layers[].digest' "$m" | while IFS= read -r d; do echo "$oci/blobs/${d%%:*}/${d#*:}"; done
}

# si_layer_list BLOB: tar member names (leading ./ stripped), any compression tar understands.
si_layer_list() {
  tar -tf "$1" | sed -e 's#^\./##' -e '/^$/d'
}

# si_verify_test_image OCI_DIR TAG: the layer tarballs must really hold what the test relies on.
si_verify_test_image() {
  local oci=$1 tag=$2
  local -a layers
  mapfile -t layers < <(si_image_layers "$oci" "$tag")
  [ "${#layers[@]}" -eq 3 ] || {
    si_fail "expected 3 layers in $oci:$tag, found ${#layers[@]}"
    return 1
  }
  local want l=1
  local -a l1 l2 l3
  mapfile -t l1 < <(si_layer_list "${layers[0]}")
  mapfile -t l2 < <(si_layer_list "${layers[1]}")
  mapfile -t l3 < <(si_layer_list "${layers[2]}")
  _si_has() {
    local entry=$1 layer=$2
    shift 2
    local e
    for e in "$@"; do [ "${e%/}" = "$entry" ] && return 0; done
    si_fail "layer $layer does not contain the tar entry '$entry'; it has: $*"
  }
  for want in bin/busybox bin/sh bin/cat bin/ls etc/hello.txt "${SI_IMG_DELETED#/}"; do
    _si_has "$want" 1 "${l1[@]}" || return 1
  done
  for want in data/opq/old-a.txt data/opq/sub/old-c.txt etc/layer2.txt; do
    _si_has "$want" 2 "${l2[@]}" || return 1
  done
  local wh
  wh="$(dirname "${SI_IMG_DELETED#/}")/.wh.$(basename "$SI_IMG_DELETED")"
  for want in "$wh" data/opq/.wh..wh..opq "data/opq/$SI_IMG_OPQ_NEW" top-marker.txt; do
    _si_has "$want" 3 "${l3[@]}" || return 1
  done
  # The whiteout markers must be plain empty regular files in the archive.
  local line
  for want in "$wh" data/opq/.wh..wh..opq; do
    line=$(tar -tvf "${layers[2]}" "$want" 2>/dev/null | head -n1)
    case "$line" in
      -*" 0 "*) ;;
      *)
        si_fail "whiteout entry $want is not an empty regular file: '$line'"
        return 1
        ;;
    esac
  done
  for l in 1 2 3; do
    si_log "layer $l: $(basename "${layers[$((l - 1))]}" | cut -c1-12) ($(stat -c %s "${layers[$((l - 1))]}") bytes)"
  done
  si_log "layer 3 holds the whiteout '$wh' and the opaque marker 'data/opq/.wh..wh..opq'"
  unset -f _si_has
}

# si_chain_ids OCI_DIR TAG: chain IDs (containerd snapshot names), bottom layer first.
si_chain_ids() {
  local oci=$1 tag=$2 m cfg chain="" d
  m=$(si_image_manifest "$oci" "$tag") || return 1
  cfg=$(jq -r '.config.digest' "$m")
  for d in $(jq -r '.rootfs.diff_ids[]' "$oci/blobs/${cfg%%:*}/${cfg#*:}"); do
    if [ -z "$chain" ]; then
      chain=$d
    else
      chain="sha256:$(printf '%s %s' "$chain" "$d" | sha256sum | cut -d' ' -f1)"
    fi
    echo "$chain"
  done
}

# si_push_image OCI_DIR TAG DEST_REF: pushes to the local registry. This is the single place that
# decides how images reach the registry (later: `snapimport copy`).
si_push_image() {
  local oci=$1 tag=$2 dest=$3
  si_require skopeo
  local policy=$SI_WORK/skopeo-policy.json
  [ -f "$policy" ] || echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$policy"
  skopeo --policy "$policy" copy --quiet --dest-tls-verify=false "oci:$oci:$tag" "docker://$dest"
}

# si_registry_has REPO TAG: the registry serves the manifest.
si_registry_has() {
  curl -fsS -o /dev/null \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' \
    "http://$SI_REGISTRY/v2/$1/manifests/$2"
}

# si_write_hosts_dir HOST:PORT : hosts.toml for a plain-http registry -> $SI_HOSTS_DIR.
# containerd 1.6 needs at least one [host."..."] table or it ignores the file.
si_write_hosts_dir() {
  local hp=$1
  SI_HOSTS_DIR=${SI_HOSTS_DIR:-$SI_WORK/certs.d}
  mkdir -p "$SI_HOSTS_DIR/$hp"
  cat >"$SI_HOSTS_DIR/$hp/hosts.toml" <<EOF
server = "http://$hp"

[host."http://$hp"]
  capabilities = ["pull", "resolve", "push"]
  skip_verify = true
EOF
}

# ----------------------------------------------------------------------------------------------
# snapimport

# si_snapimport_cpu_cgroup: prints a cgroup directory with the cpu controller for the daemon, made
# if needed, as packaging/systemd/snapimport.service gets one (CPUAccounting=yes): the daemon's
# layer priorities are on only there. Prints nothing (the daemon then runs where the test runs,
# and says the priorities are off) with SI_SNAPIMPORT_CPU_CGROUP=0 or where no cgroup can be made.
si_snapimport_cpu_cgroup() {
  [ "${SI_SNAPIMPORT_CPU_CGROUP:-1}" = 1 ] || return 0
  local dir
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    # cgroup v2: the root hands the cpu controller down (no-op when it already does).
    grep -qw cpu /sys/fs/cgroup/cgroup.controllers 2>/dev/null || return 0
    echo +cpu >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || return 0
    dir=/sys/fs/cgroup/snapimport-test
  elif [ -d /sys/fs/cgroup/cpu ]; then
    dir=/sys/fs/cgroup/cpu/snapimport-test  # cgroup v1 (or hybrid)
  else
    return 0
  fi
  mkdir -p "$dir" 2>/dev/null && [ -w "$dir/cgroup.procs" ] && echo "$dir"
  return 0
}

# si_start_snapimport [EXTRA_ARGS...]: sets SI_SNAPIMPORT_SOCK, SI_SNAPIMPORT_ROOT, SI_SNAPIMPORT_PID,
# SI_SNAPIMPORT_CGROUP.
si_start_snapimport() {
  [ -n "${SNAPIMPORT_BIN:-}" ] || si_die "SNAPIMPORT_BIN is not set (path to the built snapimport binary)"
  [ -x "$SNAPIMPORT_BIN" ] || si_die "SNAPIMPORT_BIN=$SNAPIMPORT_BIN is not an executable (build it with scripts/build.sh)"
  SI_SNAPIMPORT_ROOT=$SI_WORK/snapimport/root
  SI_SNAPIMPORT_SOCK=$SI_WORK/snapimport/snapimport.sock
  SI_SNAPIMPORT_LOG=$SI_WORK/logs/snapimport.log
  mkdir -p "$SI_WORK/snapimport"
  # The cgroup the daemon runs in ("" when none could be made); tests read it back.
  SI_SNAPIMPORT_CGROUP=$(si_snapimport_cpu_cgroup)
  local launch=()
  # shellcheck disable=SC2016 # $$ and $@ belong to the inner shell
  [ -z "$SI_SNAPIMPORT_CGROUP" ] || launch=(sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$SI_SNAPIMPORT_CGROUP")
  "${launch[@]}" "$SNAPIMPORT_BIN" serve --root "$SI_SNAPIMPORT_ROOT" --address "$SI_SNAPIMPORT_SOCK" "$@" \
    >>"$SI_SNAPIMPORT_LOG" 2>&1 &
  SI_SNAPIMPORT_PID=$!
  si_track snapimport "$SI_SNAPIMPORT_PID"
  local deadline=$((SECONDS + 30))
  while [ ! -S "$SI_SNAPIMPORT_SOCK" ]; do
    if ! si_alive "$SI_SNAPIMPORT_PID"; then
      wait "$SI_SNAPIMPORT_PID" 2>/dev/null || true
      tail -n 30 "$SI_SNAPIMPORT_LOG" >&2
      si_fail "snapimport exited before creating its socket"
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 30 "$SI_SNAPIMPORT_LOG" >&2
      si_fail "snapimport did not create $SI_SNAPIMPORT_SOCK within 30s"
      return 1
    fi
    sleep 0.05
  done
  si_log "snapimport serving on $SI_SNAPIMPORT_SOCK (pid $SI_SNAPIMPORT_PID, root $SI_SNAPIMPORT_ROOT)"
}

# si_write_snapimport_config: $SI_WORK/snapimport.toml for an importing snapimport: registry
# hosts from $SI_HOSTS_DIR (si_write_hosts_dir first) and metrics on a free loopback port.
# Sets METRICS_PORT; start it with `si_start_snapimport --config "$SI_WORK/snapimport.toml"`.
si_write_snapimport_config() {
  METRICS_PORT=$(si_free_port)
  cat >"$SI_WORK/snapimport.toml" <<TOML
[registry]
hosts_dir = "$SI_HOSTS_DIR"

[metrics]
address = "127.0.0.1:$METRICS_PORT"
TOML
}

# si_use_cri_and_snapimport_content: the next si_start_containerd runs CRI with snapimport as
# snapshotter and as its only content store, as packaging/containerd/config-1.6.toml sets up a node.
si_use_cri_and_snapimport_content() {
  export SI_CONTAINERD_CRI=1
  export SI_CONTAINERD_DISABLED_EXTRA="io.containerd.content.v1.content"
  export SI_CONTAINERD_EXTRA_CONFIG="[proxy_plugins.snapimport-content]
  type = \"content\"
  address = \"$SI_SNAPIMPORT_SOCK\""
}

# ----------------------------------------------------------------------------------------------
# containerd

# Plugins a private test containerd does not need. CRI is dropped unless SI_CONTAINERD_CRI=1.
si_containerd_disabled_plugins() {
  local -a p=(
    io.containerd.snapshotter.v1.aufs
    io.containerd.snapshotter.v1.btrfs
    io.containerd.snapshotter.v1.devmapper
    io.containerd.snapshotter.v1.zfs
    io.containerd.internal.v1.opt
    io.containerd.internal.v1.tracing
    io.containerd.tracing.processor.v1.otlp
  )
  # 2.x: an erofs differ would compete with the walking one for the platform.
  [ "${SI_CONTAINERD_MAJOR:-1}" -ge 2 ] && p+=(io.containerd.differ.v1.erofs io.containerd.snapshotter.v1.erofs)
  [ "${SI_CONTAINERD_CRI:-0}" = 1 ] || p+=(io.containerd.grpc.v1.cri)
  local x
  for x in ${SI_CONTAINERD_DISABLED_EXTRA:-}; do p+=("$x"); done
  local out=""
  for x in "${p[@]}"; do out+="\"$x\", "; done
  echo "[${out%, }]"
}

# si_write_containerd_config [SNAPSHOT_PROXY_SOCK]: writes $SI_CONTAINERD_CONFIG: config version 2
# for containerd 1.6 and 1.7, version 3 (its plugin names) for 2.x.
si_write_containerd_config() {
  local proxy_sock=${1:-${SI_SNAPIMPORT_SOCK:-}}
  local d=$SI_WORK/containerd
  mkdir -p "$d/root" "$d/state" "$d/tmp"
  SI_CONTAINERD_CONFIG=$d/config.toml
  SI_CONTAINERD_SOCK=$d/containerd.sock
  local version=2
  [ "$SI_CONTAINERD_MAJOR" -ge 2 ] && version=3
  {
    cat <<EOF
# Private containerd $SI_CONTAINERD_VERSION for snapimport tests; written by tests/integration/lib.sh.
version = $version
root = "$d/root"
state = "$d/state"
disabled_plugins = $(si_containerd_disabled_plugins)

EOF
    si_containerd_private_tables
    if [ -n "$proxy_sock" ]; then
      # SI_DIFF_PROXY=1 (1.7.4+, 2.x): snapimport's diff service applies layers into its own
      # snapshots; containerd's diff service tries it first and its walking differ after it.
      if [ "${SI_DIFF_PROXY:-0}" = 1 ]; then
        cat <<EOF

[proxy_plugins.snapimport-diff]
  type = "diff"
  address = "$proxy_sock"

[plugins."io.containerd.service.v1.diff-service"]
  default = ["snapimport-diff", "walking"]
EOF
      fi
      cat <<EOF

[proxy_plugins.snapimport]
  type = "snapshot"
  address = "$proxy_sock"
EOF
      # 1.7.16+ and 2.x read exports: 2.x CRI reports exports.root in ImageFsInfo, and 2.1's
      # transfer service passes the CRI layer labels only to a snapshotter that asks for them.
      if [ "$SI_CONTAINERD_VERSION" != 1.6 ]; then
        cat <<EOF
  [proxy_plugins.snapimport.exports]
    root = "${SI_SNAPIMPORT_ROOT:-$d/root/io.containerd.snapshotter.v1.snapimport}"
    enable_remote_snapshot_annotations = "${SI_CONTAINERD_REMOTE_ANNOTATIONS:-true}"
EOF
      fi
    fi
    if [ "${SI_CONTAINERD_CRI:-0}" = 1 ]; then
      [ -n "${SI_HOSTS_DIR:-}" ] || SI_HOSTS_DIR=$SI_WORK/certs.d
      mkdir -p "$SI_HOSTS_DIR" "$d/root/io.containerd.snapshotter.v1.snapimport"
      if [ "$version" = 2 ]; then
        cat <<EOF

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  sandbox_image = "${SI_CRI_SANDBOX_IMAGE:-registry.k8s.io/pause:3.6}"
  stats_collect_period = ${SI_CRI_STATS_PERIOD:-10}
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "${SI_CRI_SNAPSHOTTER:-snapimport}"
    disable_snapshot_annotations = $([ "${SI_CRI_ANNOTATIONS:-1}" = 0 ] && echo true || echo false)
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$d/cni/bin"
    conf_dir = "$d/cni/conf"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$SI_HOSTS_DIR"
EOF
      else
        # 2.1 pulls through the transfer service unless snapshot annotations are on in CRI (then
        # it falls back to its local pull): SI_CRI_PULL picks which path the test drives.
        local disable_annotations=true
        [ "${SI_CRI_PULL:-transfer}" = local ] && disable_annotations=false
        cat <<EOF

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "${SI_CRI_SNAPSHOTTER:-snapimport}"
  disable_snapshot_annotations = $disable_annotations
  stats_collect_period = ${SI_CRI_STATS_PERIOD:-10}
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "${SI_CRI_SANDBOX_IMAGE:-registry.k8s.io/pause:3.10}"
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "$SI_HOSTS_DIR"

[plugins."io.containerd.cri.v1.runtime".cni]
  bin_dir = "$d/cni/bin"
  conf_dir = "$d/cni/conf"
EOF
      fi
    fi
    if [ "$version" = 3 ]; then
      # The transfer service (ctr pull on 2.x, CRI on 2.1) unpacks only into snapshotters listed
      # here; a non-empty list replaces the default one, so overlayfs is listed again.
      cat <<EOF

[plugins."io.containerd.transfer.v1.local"]
  config_path = "${SI_HOSTS_DIR:-$SI_WORK/certs.d}"
EOF
      local sn differ
      for sn in ${proxy_sock:+snapimport} overlayfs; do
        # The transfer service calls the one differ named here (no fallback to the next).
        differ=walking
        [ "$sn" = snapimport ] && [ "${SI_DIFF_PROXY:-0}" = 1 ] && differ=snapimport-diff
        cat <<EOF
  [[plugins."io.containerd.transfer.v1.local".unpack_config]]
    platform = "linux/$(si_goarch)"
    snapshotter = "$sn"
    differ = "$differ"
EOF
      done
    fi
    [ -z "${SI_CONTAINERD_EXTRA_CONFIG:-}" ] || printf '\n%s\n' "$SI_CONTAINERD_EXTRA_CONFIG"
  } >"$SI_CONTAINERD_CONFIG"
}

# si_containerd_header: the private parts of a test containerd's config (top-level keys first,
# then tables), for a test that brings the rest of the config itself (e.g. a snippet verbatim).
# Prints "TOP-LEVEL KEYS" and "TABLES" parts separated by a line "#--tables--". Sets
# SI_CONTAINERD_CONFIG and SI_CONTAINERD_SOCK.
si_containerd_header() {
  local d=$SI_WORK/containerd
  mkdir -p "$d/root" "$d/state" "$d/tmp"
  SI_CONTAINERD_CONFIG=$d/config.toml
  SI_CONTAINERD_SOCK=$d/containerd.sock
  cat <<EOF
root = "$d/root"
state = "$d/state"
#--tables--
EOF
  si_containerd_private_tables
}

# si_containerd_private_tables: the tables every test containerd has (its own sockets, log level,
# no metrics listener).
si_containerd_private_tables() {
  cat <<EOF
[grpc]
  address = "$SI_CONTAINERD_SOCK"

[ttrpc]
  address = "$SI_CONTAINERD_SOCK.ttrpc"

[debug]
  level = "${SI_CONTAINERD_LOG_LEVEL:-debug}"

[metrics]
  address = ""
EOF
}

# si_goarch: this machine's architecture as containerd names platforms (amd64, arm64, ...).
si_goarch() {
  case "$(uname -m)" in
    x86_64) echo amd64 ;;
    aarch64) echo arm64 ;;
    armv7l) echo arm ;;
    *) uname -m ;;
  esac
}

# si_start_containerd [SNAPSHOT_PROXY_SOCK]: writes the config and starts containerd; sets
# SI_CONTAINERD_SOCK, SI_CONTAINERD_PID, SI_CONTAINERD_LOG.
#
# containerd 1.6 puts shim sockets in /run/containerd/s and runc state in /run/containerd/runc no
# matter what its config says. So containerd runs in a private mount namespace with its own tmpfs
# on /run: nothing of the host's /run/containerd (a system containerd) is touched. Its temp mounts
# go under the work dir (XDG_RUNTIME_DIR). Run containers with si_ctr_run (FIFOs under the work dir).
si_start_containerd() {
  si_require containerd ctr runc
  si_write_containerd_config "$@"
  si_launch_containerd
}

# si_launch_containerd: starts containerd with the config already at $SI_CONTAINERD_CONFIG, which
# must serve gRPC on $SI_CONTAINERD_SOCK (si_containerd_header writes those keys), as
# si_start_containerd does.
si_launch_containerd() {
  SI_CONTAINERD_LOG=$SI_WORK/logs/containerd.log
  local d=$SI_WORK/containerd
  mkdir -p "$d/fifo"
  local -a envs=(env -u XDG_RUNTIME_DIR XDG_RUNTIME_DIR="$d/tmp" TMPDIR="$d/tmp")
  # SI_CONTAINERD_ENV: more NAME=VALUE words for containerd's environment (the import benchmark's
  # containerd variants, e.g. CONTAINERD_DISABLE_IGZIP=1).
  local -a extra_env
  read -r -a extra_env <<<"${SI_CONTAINERD_ENV:-}"
  envs+=("${extra_env[@]}")
  if [ "${SI_CONTAINERD_PRIVATE_RUN:-1}" = 1 ]; then
    si_require unshare nsenter
    # shellcheck disable=SC2016
    "${envs[@]}" unshare --mount --propagation private -- /bin/sh -c \
      'mount -t tmpfs -o mode=0755,size=64m snapimport-it-run /run && exec containerd --config "$1"' \
      sh "$SI_CONTAINERD_CONFIG" >>"$SI_CONTAINERD_LOG" 2>&1 &
  else
    "${envs[@]}" containerd --config "$SI_CONTAINERD_CONFIG" >>"$SI_CONTAINERD_LOG" 2>&1 &
  fi
  SI_CONTAINERD_PID=$!
  si_track containerd "$SI_CONTAINERD_PID"
  local deadline=$((SECONDS + 60))
  while ! timeout 5 ctr --address "$SI_CONTAINERD_SOCK" version >/dev/null 2>&1; do
    if ! si_alive "$SI_CONTAINERD_PID"; then
      wait "$SI_CONTAINERD_PID" 2>/dev/null || true
      tail -n 40 "$SI_CONTAINERD_LOG" >&2
      si_fail "containerd exited during start-up (config $SI_CONTAINERD_CONFIG)"
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 40 "$SI_CONTAINERD_LOG" >&2
      si_fail "containerd did not answer on $SI_CONTAINERD_SOCK within 60s"
      return 1
    fi
    sleep 0.1
  done
  # The release the test asked for, and no other, must be the one answering.
  local served
  served=$(timeout 5 ctr --address "$SI_CONTAINERD_SOCK" version 2>/dev/null |
    awk '/^Server:/ { s = 1 } s && $1 == "Version:" { print $2; exit }')
  case "$served" in
    "$SI_CONTAINERD_VERSION".* | v"$SI_CONTAINERD_VERSION".*) ;;
    *)
      si_fail "containerd on $SI_CONTAINERD_SOCK reports version '$served', want $SI_CONTAINERD_VERSION.x"
      return 1
      ;;
  esac
  si_log "containerd $served ready on $SI_CONTAINERD_SOCK (pid $SI_CONTAINERD_PID, config $SI_CONTAINERD_CONFIG)"
}

# si_ctr ARGS... : ctr against the private containerd (killed after $SI_CTR_TIMEOUT s, default 300).
si_ctr() { timeout "${SI_CTR_TIMEOUT:-300}" ctr --address "$SI_CONTAINERD_SOCK" "$@"; }

# si_ctr_run NAMESPACE RUN_ARGS... : `ctr run` with its FIFOs under the work dir. (ctr's default,
# /run/containerd/fifo, is on the host and invisible to the shims in containerd's private /run.)
si_ctr_run() {
  local ns=$1
  shift
  timeout "${SI_CTR_TIMEOUT:-300}" \
    ctr --address "$SI_CONTAINERD_SOCK" -n "$ns" run --fifo-dir "$SI_WORK/containerd/fifo" "$@"
}

# si_containerd_plugin_status TYPE ID: prints ok/skip/error for one plugin.
si_containerd_plugin_status() {
  ctr --address "$SI_CONTAINERD_SOCK" plugins ls | awk -v t="$1" -v i="$2" '$1 == t && $2 == i { print $NF }'
}

# ----------------------------------------------------------------------------------------------
# talking to a snapshots.v1 socket directly (no containerd in between)

# si_backend_list SOCK [SNAPSHOTTER [NAMESPACE]]: calls Snapshots/List over the unix socket with
# curl (HTTP/2, prior knowledge) and prints "name<TAB>parent<TAB>kind" per snapshot.
# SNAPSHOTTER/NAMESPACE are only needed when SOCK is containerd's own socket.
si_backend_list() {
  local sock=$1 snapshotter=${2:-} ns=${3:-}
  [ -n "$SI_PYTHON" ] || si_die "python3 is needed to decode gRPC replies"
  local tmp
  tmp=$(mktemp -d "$SI_WORK/grpc.XXXXXX")
  # ListSnapshotsRequest{1: snapshotter} in a gRPC frame.
  "$SI_PYTHON" - "$snapshotter" >"$tmp/req" <<'EOF'
import struct, sys
s = sys.argv[1].encode()
msg = (b"\x0a" + bytes([len(s)]) + s) if s else b""
sys.stdout.buffer.write(b"\x00" + struct.pack(">I", len(msg)) + msg)
EOF
  local -a hdr=(-H 'content-type: application/grpc' -H 'te: trailers')
  [ -n "$ns" ] && hdr+=(-H "containerd-namespace: $ns")
  if ! curl -sS --http2-prior-knowledge --max-time 30 --unix-socket "$sock" "${hdr[@]}" \
    --data-binary @"$tmp/req" -D "$tmp/headers" -o "$tmp/body" \
    http://localhost/containerd.services.snapshots.v1.Snapshots/List; then
    rm -rf "$tmp"
    si_fail "gRPC List on $sock failed (curl)"
    return 1
  fi
  local rc=0
  "$SI_PYTHON" - "$tmp/body" "$tmp/headers" <<'EOF' || rc=$?
import struct, sys
body = open(sys.argv[1], "rb").read()
headers = open(sys.argv[2], "r", errors="replace").read().lower()
status = None
for line in headers.splitlines():
    if line.startswith("grpc-status:"):
        status = line.split(":", 1)[1].strip()
if status not in (None, "0"):
    sys.stderr.write("gRPC List failed: " + " ".join(l for l in headers.splitlines() if l.startswith("grpc-")) + "\n")
    sys.exit(1)

def fields(buf):
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(buf, i)
        elif wt == 2:
            n, i = varint(buf, i)
            v = buf[i:i + n]; i += n
        elif wt == 1:
            v = buf[i:i + 8]; i += 8
        elif wt == 5:
            v = buf[i:i + 4]; i += 4
        else:
            raise ValueError("bad wire type %d" % wt)
        yield num, v

def varint(buf, i):
    r = s = 0
    while True:
        b = buf[i]; i += 1
        r |= (b & 0x7f) << s; s += 7
        if not b & 0x80:
            return r, i

kinds = {0: "unknown", 1: "view", 2: "active", 3: "committed"}
i = 0
while i + 5 <= len(body):
    flag, n = body[i], struct.unpack(">I", body[i + 1:i + 5])[0]
    msg = body[i + 5:i + 5 + n]; i += 5 + n
    if flag:
        sys.exit("compressed gRPC frame not supported")
    for num, info in fields(msg):          # ListSnapshotsResponse.info (1)
        if num != 1:
            continue
        name = parent = ""; kind = 0
        for f, v in fields(info):          # Info: 1 name, 2 parent, 3 kind
            if f == 1: name = v.decode()
            elif f == 2: parent = v.decode()
            elif f == 3: kind = v
        print("%s\t%s\t%s" % (name, parent, kinds.get(kind, str(kind))))
EOF
  rm -rf "$tmp"
  return "$rc"
}

si_select_containerd
