# shellcheck shell=bash
# Helpers for the importer's integration tests (issue 6), on top of lib.sh. Source lib.sh first;
# sourcing this also skips the script (exit 77) unless root, requires CRI_CLIENT, defines fail().
#
#   si_imp_add_layer OCI TAG NAME [FILES]  add a layer holding /layers/NAME.txt (and FILES more
#                                          small files under /layers/NAME/) to OCI:TAG
#   si_imp_start_snapimport [ARGS...]      config (hosts dir, metrics port) + si_start_snapimport
#   si_imp_start_cri_containerd            containerd with CRI on, snapimport as snapshotter + content
#   si_imp_metrics                         snapimport's /metrics text
#   si_imp_metric NAME                     one metric's value (sum over its label sets), 0 if absent
#   si_imp_imported_count                  `msg="imported layer"` lines in snapimport's log
#   si_imp_applied_count                   `diff applied` lines in containerd's log
#   si_imp_blob_gets DIGEST [UA_PREFIX]    GETs of a blob answered 200, from the registry's access log
#   si_imp_htpasswd FILE USER PASS         bcrypt htpasswd file for the registry's auth
#   si_imp_push_image_creds OCI TAG REF U:P  push to a registry with Basic auth
#   si_imp_build_nspull OUT                build tests/integration/go/nspull (GOPATH mode)
#   si_imp_backend_cleanup SOCK            Snapshots/Cleanup straight on snapimport's socket
#   si_imp_live_ids ROOT                   ids of the snapshot records in ROOT/meta.db, sorted
#   si_imp_same_pull_output A B SOCK...    two `snapimport pull` outputs read the same, apart from
#                                          the sockets named and the durations

SI_IMP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Every importer e2e script needs root (else it is skipped: exit 77) and the cri_client tool.
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (containerd, mounts)"; exit 77; }
[ -n "${CRI_CLIENT:-}" ] || si_die "CRI_CLIENT is not set (path to the cri_client test tool)"
fail() { si_fail "$*"; exit 1; }

# si_imp_add_layer OCI TAG NAME [FILES]: one more layer on top of OCI:TAG: /layers/NAME.txt and
# FILES (default 0) small files /layers/NAME/dNN/fNNNN.
si_imp_add_layer() {
  local oci=$1 tag=$2 name=$3 files=${4:-0} d
  d=$(mktemp -d "$SI_WORK/layer.XXXXXX")
  mkdir -p "$d/layers"
  echo "layer $name" >"$d/layers/$name.txt"
  if [ "$files" -gt 0 ]; then
    "$SI_PYTHON" - "$d/layers/$name" "$files" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    sub = os.path.join(root, "d%02d" % (i % 50))
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, "f%05d" % i), "w") as f:
        f.write("file %d of %s\n" % (i, root))
PY
  fi
  find "$d" -type d -exec chmod 0755 {} +
  find "$d" -type f -exec chmod 0644 {} +
  tar -C "$d" --create --file "$d.tar" --format=posix --pax-option=delete=atime,delete=ctime \
    --sort=name --numeric-owner --owner=0 --group=0 --mtime=@1700000000 layers
  umoci raw add-layer --image "$oci:$tag" --history.created_by "layer $name" "$d.tar"
  rm -rf "$d" "$d.tar"
}

# si_imp_start_snapimport [SERVE_ARGS...]: writes $SI_WORK/snapimport.toml (hosts dir, metrics on a
# free port, plus $SI_IMP_EXTRA_TOML) and starts snapimport with it at debug level. Sets
# SI_IMP_METRICS_PORT. Call si_write_hosts_dir first.
si_imp_start_snapimport() {
  [ -n "${SI_IMP_METRICS_PORT:-}" ] || SI_IMP_METRICS_PORT=$(si_free_port)
  cat >"$SI_WORK/snapimport.toml" <<TOML
[registry]
hosts_dir = "$SI_HOSTS_DIR"

[metrics]
address = "127.0.0.1:$SI_IMP_METRICS_PORT"
${SI_IMP_EXTRA_TOML:-}
TOML
  si_start_snapimport --config "$SI_WORK/snapimport.toml" --log-level debug "$@"
}

# si_imp_start_cri_containerd: containerd with CRI (snapshotter snapimport, annotations on,
# config_path $SI_HOSTS_DIR), snapimport as snapshotter and content store.
si_imp_start_cri_containerd() {
  export SI_CONTAINERD_CRI=1
  export SI_CONTAINERD_DISABLED_EXTRA="io.containerd.content.v1.content"
  export SI_CONTAINERD_EXTRA_CONFIG="[proxy_plugins.snapimport-content]
  type = \"content\"
  address = \"$SI_SNAPIMPORT_SOCK\""
  si_start_containerd
}

si_imp_metrics() { curl -fsS --max-time 10 "http://127.0.0.1:$SI_IMP_METRICS_PORT/metrics"; }

# si_imp_metric NAME [LABEL_SUBSTRING]: sum of NAME over its label sets (0 if absent).
si_imp_metric() {
  local name=$1 sub=${2:-}
  si_imp_metrics | awk -v n="$name" -v s="$sub" '
    { m = $1; sub(/\{.*/, "", m) }
    m == n && (s == "" || index($1, s)) { t += $2 }
    END { printf "%d\n", t }'
}

# si_imp_status [--json]: `snapimport status` of the daemon si_imp_start_snapimport started.
si_imp_status() { "$SNAPIMPORT_BIN" status --admin-address "${SI_SNAPIMPORT_SOCK%.sock}-admin.sock" "$@"; }
# si_imp_layer_status DIGEST: "STATE SOURCE VIA" of the layer's first entry in `snapimport status`
# ("-" for an empty field; "absent - -" when no image lists it).
si_imp_layer_status() {
  si_imp_status --json | jq -r --arg d "$1" '[.images[].layers[] | select(.digest == $d)][0] // {} |
    "\(.state // "absent") \(if (.source // "") == "" then "-" else .source end) \(if (.via // "") == "" then "-" else .via end)"'
}

si_imp_imported_count() { grep -c 'msg="imported layer"' "$SI_SNAPIMPORT_LOG" || true; }
si_imp_applied_count() { grep -c 'diff applied' "$SI_CONTAINERD_LOG" || true; }

# si_imp_blob_gets DIGEST [UA_PREFIX]: GET requests for /v2/<any repo>/blobs/DIGEST that the
# registry answered with 200 (access log), optionally only those whose user agent starts with
# UA_PREFIX. (Refused requests, such as a 401 before credentials, are not fetches.)
si_imp_blob_gets() {
  local digest=$1 ua=${2:-}
  grep -F "\"GET /v2/" "$SI_REGISTRY_LOG" | grep -F "/blobs/$digest HTTP/" | grep -F '" 200 ' |
    awk -v ua="$ua" 'ua == "" || index($0, "\"" ua) { n++ } END { printf "%d\n", n }'
}

# si_imp_same_pull_output A B SOCK...: diffs two `snapimport pull` outputs (to stderr) with each
# SOCK replaced by "SOCK" and "(1.2s)" durations by "(Ns)"; fails when they differ.
si_imp_same_pull_output() {
  local a=$1 b=$2 expr='s|([0-9.]*s)|(Ns)|g' s
  shift 2
  for s in "$@"; do expr="s|$s|SOCK|g; $expr"; done
  diff <(sed -e "$expr" "$a") <(sed -e "$expr" "$b") >&2
}

# si_imp_htpasswd FILE USER PASSWORD: a bcrypt htpasswd file, as distribution's htpasswd auth wants
# (htpasswd -B from apache2-utils when installed, else Python's crypt with the system's bcrypt).
# bcrypt's lowest cost (4): the registry checks the password on every request, and the default
# cost makes each check take a quarter of a second.
si_imp_htpasswd() {
  local file=$1 user=$2 pass=$3
  if command -v htpasswd >/dev/null 2>&1; then
    htpasswd -Bbn -C 4 "$user" "$pass" | sed '/^$/d' >"$file"
  else
    "$SI_PYTHON" -W ignore - "$user" "$pass" >"$file" <<'PY'
import crypt, sys
h = crypt.crypt(sys.argv[2], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
if not h or not h.startswith("$2"):
    sys.exit("no bcrypt in this libc's crypt(); install apache2-utils for htpasswd -B")
print("%s:%s" % (sys.argv[1], h))
PY
  fi
}

# si_imp_push_image_creds OCI TAG REF USER:PASS: si_push_image to a registry that wants credentials.
si_imp_push_image_creds() {
  local oci=$1 tag=$2 dest=$3 creds=$4
  local policy=$SI_WORK/skopeo-policy.json
  [ -f "$policy" ] || echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$policy"
  skopeo --policy "$policy" copy --quiet --dest-tls-verify=false --dest-creds "$creds" \
    "oci:$oci:$tag" "docker://$dest"
}

# si_imp_build_nspull OUT: builds the nspull Go tool (containerd client pull with CRI labels in any
# namespace) into OUT, in GOPATH mode with Debian's containerd sources. Nothing is written to the
# source tree; Go's build cache is the default one (shared with the other Go test tools).
si_imp_build_nspull() {
  local out=$1
  si_require go
  local gopath
  gopath=$(mktemp -d "$SI_WORK/gopath.XXXXXX")
  mkdir -p "$gopath/src/snapimport/tests/integration"
  cp -r "$SI_IMP_DIR/go/nspull" "$gopath/src/snapimport/tests/integration/"
  local cache=${GOCACHE:-}
  # Go needs a cache dir; without HOME (some CI environments) give it one under /tmp.
  [ -n "$cache" ] || [ -n "${HOME:-}" ] || [ -n "${XDG_CACHE_HOME:-}" ] || cache=/tmp/snapimport-gocache
  (
    [ -z "$cache" ] || export GOCACHE=$cache
    cd "$gopath/src/snapimport/tests/integration/nspull" &&
      GO111MODULE=off GOPATH="$gopath:/usr/share/gocode" GOFLAGS="" GOPROXY=off go build -o "$out" .
  )
  rm -rf "$gopath"
}

# si_imp_backend_cleanup SOCK: calls containerd.services.snapshots.v1.Snapshots/Cleanup on a
# snapshots.v1 socket (curl, HTTP/2 prior knowledge), as containerd's GC does after a collection.
si_imp_backend_cleanup() {
  local sock=$1 tmp
  tmp=$(mktemp -d "$SI_WORK/grpc.XXXXXX")
  printf '\0\0\0\0\0' >"$tmp/req" # CleanupRequest{} in a gRPC frame
  if ! curl -sS --http2-prior-knowledge --max-time 60 --unix-socket "$sock" \
    -H 'content-type: application/grpc' -H 'te: trailers' \
    --data-binary @"$tmp/req" -D "$tmp/headers" -o "$tmp/body" \
    http://localhost/containerd.services.snapshots.v1.Snapshots/Cleanup; then
    rm -rf "$tmp"
    si_fail "gRPC Cleanup on $sock failed (curl)"
    return 1
  fi
  local status
  status=$(tr -d '\r' <"$tmp/headers" | awk -F': *' 'tolower($1) == "grpc-status" { print $2 }' | tail -n1)
  if [ -n "$status" ] && [ "$status" != 0 ]; then
    si_fail "gRPC Cleanup on $sock: $(tr -d '\r' <"$tmp/headers" | grep -i '^grpc-' | tr '\n' ' ')"
    rm -rf "$tmp"
    return 1
  fi
  rm -rf "$tmp"
}

# si_imp_live_ids ROOT: ids of every snapshot record in ROOT/meta.db (read-only), one per line.
si_imp_live_ids() {
  "$SI_PYTHON" - "$1/meta.db" <<'EOF'
import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True, timeout=30)
for (i,) in db.execute("SELECT id FROM snapshots ORDER BY id"):
    print(i)
EOF
}
