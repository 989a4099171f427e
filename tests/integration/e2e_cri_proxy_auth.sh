#!/usr/bin/env bash
# Issue 11, acceptance: a private image whose credentials arrive only through CRI PullImage.auth
# (as kubelet sends imagePullSecrets) is imported, not fallen back, when the pull goes through
# snapimport's CRI image-service proxy ([cri] image_service_address).
#
#   1. `snapimport pull --creds` with the daemon's config finds the proxy by itself. Every layer is
#      imported by snapimport (each blob fetched once, by snapimport; containerd fetches none and
#      applies none), and snapimport reads the manifest and the config containerd wrote into its
#      content store instead of asking the registry for them again.
#   2. The credential is bound to that pull's image reference, not to the host: an image in another
#      repository of the same registry, pulled meanwhile straight at containerd with the same
#      credentials, gets none of them; its new layer falls back (no_credentials) and containerd
#      fetches it itself.
#   3. The credential is dropped after the grace period (gauge snapimport_cri_pull_credentials),
#      is never logged, and the image runs.
#   4. A wrong password fails through the proxy with containerd's own error, unchanged.
#
# SI_PROXY_AUTH=basic (default): distribution's htpasswd Basic auth. token: distribution's token
# auth with the JWT issuer of tests/registry/token_server.py (pull-only user bob; the importer
# exchanges the CRI credential for a token at the realm); no token may appear in a log either.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/import_lib.sh"  # also: root (else exit 77), CRI_CLIENT, fail()

AUTH_MODE=${SI_PROXY_AUTH:-basic}
si_init_workdir "e2e-cri-proxy-$AUTH_MODE"
start_token_registry() {
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=token issuer" \
    -keyout "$SI_WORK/token.key" -out "$SI_WORK/token.pem" 2>/dev/null
  TOKEN_PORT=$(si_free_port)
  "$SI_PYTHON" "$SI_IMP_DIR/../registry/token_server.py" "$SI_WORK/token.key" "$SI_WORK/token.pem" \
    "$TOKEN_PORT" snapimport-test issuer-test >>"$SI_WORK/logs/token.log" 2>&1 &
  si_track token-server $!
  for _ in $(seq 1 50); do
    curl -fsS -o /dev/null "http://127.0.0.1:$TOKEN_PORT/_stats" 2>/dev/null && break
    sleep 0.1
  done
  SI_REGISTRY_AUTH_YAML="auth:
  token:
    realm: http://127.0.0.1:$TOKEN_PORT/token
    service: snapimport-test
    issuer: issuer-test
    rootcertbundle: $SI_WORK/token.pem" si_start_registry
}
case "$AUTH_MODE" in
  basic)
    USER_NAME=kubelet
    PASSWORD="pw-$RANDOM$RANDOM-secret"
    PUSHER="$USER_NAME:$PASSWORD"
    HTPASSWD=$SI_WORK/htpasswd
    si_step "write a bcrypt htpasswd file" si_imp_htpasswd "$HTPASSWD" "$USER_NAME" "$PASSWORD"
    si_step "start a registry with htpasswd Basic auth" si_start_registry "$HTPASSWD"
    ;;
  token)
    # The issuer's users (token_server.py): alice pushes, bob may only pull.
    USER_NAME=bob
    PASSWORD=bobpw
    PUSHER=alice:alicepw
    si_step "start a JWT token issuer and a registry with token auth" start_token_registry
    ;;
  *) si_die "SI_PROXY_AUTH=$AUTH_MODE: want basic or token" ;;
esac

OCI=$SI_WORK/oci
REF=$SI_REGISTRY/team-a/private:v1
OTHER=$SI_REGISTRY/team-b/other:v1
build_other() {
  umoci tag --image "$OCI:v1" other
  si_imp_add_layer "$OCI" other other-only
}
si_step "build the three-layer test image" si_build_test_image "$OCI" v1
si_step "build a second image: the same three layers and one more" build_other
si_step "push $REF (with credentials)" si_imp_push_image_creds "$OCI" v1 "$REF" "$PUSHER"
si_step "push $OTHER (with credentials)" si_imp_push_image_creds "$OCI" other "$OTHER" "$PUSHER"
mapfile -t LAYERS < <(jq -r ".layers[].digest" "$(si_image_manifest "$OCI" v1)")
MANIFEST=sha256:$(basename "$(si_image_manifest "$OCI" v1)")
CONFIG=$(jq -r ".config.digest" "$(si_image_manifest "$OCI" v1)")
OTHER_TOP=$(jq -r ".layers[-1].digest" "$(si_image_manifest "$OCI" other)")

# The importer has no credentials of its own: no auth_file, none in the hosts dir.
PROXY_SOCK=$SI_WORK/cri-proxy.sock
GRACE_S=2
export SI_IMP_EXTRA_TOML="
[cri]
image_service_address = \"$PROXY_SOCK\"
containerd_address = \"unix://$SI_WORK/containerd/containerd.sock\"
credential_grace_period = \"${GRACE_S}s\""
si_write_hosts_dir "$SI_REGISTRY"
si_step "start snapimport (CRI proxy on $PROXY_SOCK, no registry credentials)" si_imp_start_snapimport
si_step "start containerd $SI_CONTAINERD_VERSION (CRI on, snapimport as snapshotter and content store)" si_imp_start_cri_containerd
[ -S "$PROXY_SOCK" ] || fail "snapimport does not serve $PROXY_SOCK"
mode=$(stat -c %a "$PROXY_SOCK")
[ "$mode" = 660 ] || fail "the proxy socket has mode $mode, want 660"
si_log "registry auth: $AUTH_MODE; the importer has no credentials of its own"

# --- 1. the private image is imported ---------------------------------------------------------------
pull_via_config() {
  "$SNAPIMPORT_BIN" pull --config "$SI_WORK/snapimport.toml" --creds "$USER_NAME:$PASSWORD" "$REF" |
    tee "$SI_WORK/logs/pull.out"
}
si_step "snapimport pull --creds (endpoint from the daemon's config: the proxy)" pull_via_config
grep -q "^1 pulled, 0 failed" "$SI_WORK/logs/pull.out" || fail "snapimport pull did not report success"
forwarded=$(si_imp_metric snapimport_grpc_requests_total 'method="/runtime.v1.ImageService/PullImage"')
[ "$forwarded" -eq 1 ] || fail "the proxy served $forwarded PullImage calls, want 1 (did the pull bypass it?)"
grep 'msg="CRI pull forwarded"' "$SI_SNAPIMPORT_LOG" | grep -F "image=$REF" | grep -q 'credential=cri' ||
  fail "snapimport did not log the forwarded pull with its credential"

imported=$(si_imp_imported_count)
applied=$(si_imp_applied_count)
fallbacks=$(si_imp_metric snapimport_fallbacks_total)
si_log "imported-layer lines=$imported, containerd diff applied=$applied, fallbacks=$fallbacks"
[ "$imported" -eq "${#LAYERS[@]}" ] || fail "snapimport imported $imported layers, want ${#LAYERS[@]}"
[ "$applied" -eq 0 ] || fail "containerd applied $applied layers itself"
[ "$fallbacks" -eq 0 ] || fail "the importer fell back $fallbacks times"
for l in "${LAYERS[@]}"; do
  ours=$(si_imp_blob_gets "$l" snapimport/)
  theirs=$(si_imp_blob_gets "$l" containerd/)
  [ "$ours" -eq 1 ] || fail "snapimport fetched layer $l $ours times, want 1"
  [ "$theirs" -eq 0 ] || fail "containerd fetched layer $l $theirs times, want 0"
done
manifest_gets=$(grep -F '"GET /v2/team-a/private/manifests/' "$SI_REGISTRY_LOG" | grep -F '" 200 ' | grep -cF '"snapimport/' || true)
config_gets=$(si_imp_blob_gets "$CONFIG" snapimport/)
[ "$manifest_gets" -eq 0 ] || fail "snapimport fetched the manifest $manifest_gets times; containerd had written it ($MANIFEST)"
[ "$config_gets" -eq 0 ] || fail "snapimport fetched the config $config_gets times; containerd had written it"
# In all (containerd and snapimport): one manifest GET and one config GET for the pull.
all_manifest_gets=$(grep -F '"GET /v2/team-a/private/manifests/' "$SI_REGISTRY_LOG" | grep -cF '" 200 ' || true)
all_config_gets=$(si_imp_blob_gets "$CONFIG")
[ "$all_manifest_gets" -eq 1 ] || fail "the registry served $all_manifest_gets manifest GETs for one pull, want 1"
[ "$all_config_gets" -eq 1 ] || fail "the registry served $all_config_gets config GETs for one pull, want 1"
si_log "all ${#LAYERS[@]} layers imported by snapimport with the CRI credential; manifest and config read from the content store"

# --- 2. bound to the pull, not to the host ------------------------------------------------------------
pull_direct() {
  "$SNAPIMPORT_BIN" pull --image-endpoint "unix://$SI_CONTAINERD_SOCK" --creds "$USER_NAME:$PASSWORD" "$OTHER" |
    tee "$SI_WORK/logs/pull-other.out"
}
# Within the first pull's grace: a credential keyed by host would be found now.
si_step "pull $OTHER straight at containerd (same registry, other repository)" pull_direct
grep -q "^1 pulled, 0 failed" "$SI_WORK/logs/pull-other.out" || fail "the pull of $OTHER failed"
no_creds=$(si_imp_metric snapimport_fallbacks_total 'reason="no_credentials"')
[ "$no_creds" -gt 0 ] || fail "the importer did not fall back for $OTHER: it used another pull's credential"
[ "$(si_imp_blob_gets "$OTHER_TOP" snapimport/)" -eq 0 ] || fail "snapimport fetched $OTHER's own layer without a credential for it"
[ "$(si_imp_blob_gets "$OTHER_TOP" containerd/)" -eq 1 ] || fail "containerd did not fetch $OTHER's own layer"
si_log "the credential of $REF was not used for $OTHER (fallbacks{no_credentials}=$no_creds)"

# --- 3. dropped after the grace, never logged, the image runs ----------------------------------------
sleep "$((GRACE_S + 1))"
held=$(si_imp_metric snapimport_cri_pull_credentials)
[ "$held" -eq 0 ] || fail "snapimport still holds $held CRI credentials after the grace period"
if grep -qF "$PASSWORD" "$SI_SNAPIMPORT_LOG" "$SI_CONTAINERD_LOG"; then fail "the password appears in a log"; fi
if grep -rqF "$PASSWORD" "$SI_SNAPIMPORT_ROOT" "$SI_WORK/containerd/root"; then
  fail "the password was written under snapimport's or containerd's root"
fi
if [ "$AUTH_MODE" = token ]; then
  # Every JWT starts with the base64 of '{"': "eyJ". None may be logged or stored.
  if grep -qE 'eyJ[A-Za-z0-9_-]{10,}' "$SI_SNAPIMPORT_LOG" "$SI_CONTAINERD_LOG"; then fail "a token appears in a log"; fi
  if grep -rqE 'eyJ[A-Za-z0-9_-]{10,}\.' "$SI_SNAPIMPORT_ROOT"; then fail "a token was written under snapimport's root"; fi
  stats=$(curl -fsS "http://127.0.0.1:$TOKEN_PORT/_stats")
  [ "$(jq '.get + .post' <<<"$stats")" -ge 1 ] || fail "nobody asked the token issuer for a token: $stats"
  si_log "token issuer: $stats"
fi
SCRIPT='echo "MARKER=$(cat /top-marker.txt)"'
run() {
  si_ctr_run k8s.io --rm --snapshotter snapimport "$REF" cri-proxy-auth-1 /bin/sh -c "$SCRIPT" \
    >"$SI_WORK/logs/run.out" 2>"$SI_WORK/logs/run.err" || { cat "$SI_WORK/logs/run.err" >&2; return 1; }
}
si_step "ctr run the image" run
grep -qx "MARKER=$SI_IMG_MARKER" "$SI_WORK/logs/run.out" || fail "top-layer marker missing in the container"

# --- 4. containerd's errors pass through unchanged -----------------------------------------------------
bad_pull() {
  local ep=$1 out=$2
  ! "$SNAPIMPORT_BIN" pull --image-endpoint "$ep" --creds "$USER_NAME:wrong" "$SI_REGISTRY/team-a/private:absent" >"$out" 2>&1
}
si_step "pull with a wrong password, through the proxy" bad_pull "unix://$PROXY_SOCK" "$SI_WORK/logs/bad-proxy.out"
si_step "pull with a wrong password, straight at containerd" bad_pull "unix://$SI_CONTAINERD_SOCK" "$SI_WORK/logs/bad-direct.out"
# The messages differ only in the endpoint and the duration.
si_imp_same_pull_output "$SI_WORK/logs/bad-proxy.out" "$SI_WORK/logs/bad-direct.out" "$PROXY_SOCK" "$SI_CONTAINERD_SOCK" ||
  fail "the proxy changed containerd's error (above)"
grep -q "gRPC code" "$SI_WORK/logs/bad-proxy.out" || fail "the failed pull did not report containerd's status"
si_log "a failing pull reports the same status and message through the proxy: $(grep -o 'gRPC code [0-9]*' "$SI_WORK/logs/bad-proxy.out" | head -n1)"
si_print_timings
si_log "PASS: CRI credentials reach the importer through the proxy, for their own pull only"
