# shellcheck shell=bash
# Helpers for the registry client tests, on top of tests/integration/lib.sh (source that first).
#
#   sir_registry NAME EXTRA [HTTP_EXTRA] distribution on a free port with extra YAML -> $SIR_ADDR
#   sir_skopeo ARGS...                  skopeo with a permissive policy
#   sir_copy ARGS...                    $SNAPIMPORT_BIN copy -q ARGS...
#   sir_expect_fail PATTERN CMD...      CMD must fail and its stderr must match PATTERN (grep -E)
#   sir_multiarch_layout DIR TAG        an OCI layout whose TAG is an index of amd64 + arm64/v8
#   sir_ca DIR                          a CA and a 127.0.0.1 server cert under DIR
#   sir_pyserver NAME ARGS...           start a python server from this dir -> waits for its port

SIR_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SIR_POLICY=
[ -n "${SNAPIMPORT_BIN:-}" ] || si_die "SNAPIMPORT_BIN is not set (path to the built snapimport binary)"

sir_skopeo() {
  if [ -z "$SIR_POLICY" ]; then
    SIR_POLICY=$SI_WORK/skopeo-policy.json
    echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$SIR_POLICY"
  fi
  skopeo --policy "$SIR_POLICY" "$@"
}

sir_copy() { "$SNAPIMPORT_BIN" copy -q "$@"; }

sir_expect_fail() {
  local pattern=$1
  shift
  local err=$SI_WORK/expect-fail.err
  if "$@" >/dev/null 2>"$err"; then
    si_fail "expected failure but succeeded: $*"
    return 1
  fi
  if ! grep -Eq "$pattern" "$err"; then
    si_fail "error of '$*' does not match /$pattern/:"
    cat "$err" >&2
    return 1
  fi
  si_log "failed as expected: $(head -c 400 "$err")"
}

# sir_wait_port PORT: wait until something listens on 127.0.0.1:PORT.
sir_wait_port() {
  si_wait_for "port $1" 20 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1"
}

# sir_registry NAME EXTRA_YAML [HTTP_EXTRA_YAML]: sets SIR_ADDR and SIR_<NAME>_PID. HTTP_EXTRA
# goes inside http: (indent it by two spaces), EXTRA at the top level.
sir_registry() {
  local name=$1 extra=$2 httpExtra=${3:-} port dir=$SI_WORK/reg-$1
  mkdir -p "$dir/data"
  port=$(si_free_port)
  cat >"$dir/config.yml" <<YAML
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
$httpExtra
$extra
YAML
  docker-registry serve "$dir/config.yml" >>"$SI_WORK/logs/reg-$name.log" 2>&1 &
  local pid=$!
  si_track "reg-$name" "$pid"
  eval "SIR_${name}_PID=$pid"
  sir_wait_port "$port"
  SIR_ADDR=127.0.0.1:$port
  si_log "registry $name on $SIR_ADDR (pid $pid)"
}

# sir_pyserver NAME PORT SCRIPT ARGS...: a python helper server, waited for on PORT.
sir_pyserver() {
  local name=$1 port=$2 script=$3
  shift 3
  "$SI_PYTHON" "$SIR_DIR/$script" "$@" >>"$SI_WORK/logs/$name.log" 2>&1 &
  si_track "$name" $!
  sir_wait_port "$port"
}

# sir_ca DIR: DIR/ca.pem, DIR/server.{pem,key} for 127.0.0.1 / localhost.
sir_ca() {
  local d=$1
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=snapimport test CA" \
    -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$d/ext.cnf"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
    -extfile "$d/ext.cnf" -out "$d/server.pem" 2>/dev/null
}

# sir_multiarch_layout DIR TAG: index (OCI) of two images built by si_build_test_image.
sir_multiarch_layout() {
  local dir=$1 tag=$2
  si_build_test_image "$dir" base >/dev/null
  umoci config --image "$dir:base" --architecture arm64 --tag arm64 >/dev/null 2>&1 ||
    umoci config --image "$dir:base" --config.label arch=arm64 --tag arm64
  "$SI_PYTHON" - "$dir" "$tag" <<'PY'
import hashlib, json, os, sys
d, tag = sys.argv[1], sys.argv[2]
idx = json.load(open(os.path.join(d, "index.json")))
def entry(name, arch, variant=None):
    m = [x for x in idx["manifests"] if x.get("annotations", {}).get("org.opencontainers.image.ref.name") == name][0]
    p = {"architecture": arch, "os": "linux"}
    if variant: p["variant"] = variant
    return {"mediaType": m["mediaType"], "digest": m["digest"], "size": m["size"], "platform": p}
index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
         "manifests": [entry("base", "amd64"), entry("arm64", "arm64", "v8")]}
body = json.dumps(index, indent=2).encode()
h = hashlib.sha256(body).hexdigest()
open(os.path.join(d, "blobs", "sha256", h), "wb").write(body)
idx["manifests"].append({"mediaType": index["mediaType"], "digest": "sha256:" + h, "size": len(body),
                         "annotations": {"org.opencontainers.image.ref.name": tag}})
json.dump(idx, open(os.path.join(d, "index.json"), "w"))
PY
}

# sir_manifest_digest OCI_DIR TAG: the digest index.json gives TAG.
sir_manifest_digest() {
  jq -r --arg t "$2" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | .digest' "$1/index.json"
}
