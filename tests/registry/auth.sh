#!/usr/bin/env bash
# Authentication against real distribution registries:
#  - htpasswd Basic auth over TLS with a CA the test creates (hosts.toml `ca`), credentials from
#    --creds, --authfile and a docker credential helper; wrong credentials name the sources tried;
#  - token auth (`auth.token`) with a JWT issuer that grants only each user's scopes: alice pushes
#    (OAuth2 POST), bob pulls but gets "denied" on push, an identity token uses the refresh grant,
#    anonymous pulls are refused naming the credential sources.
set -euo pipefail
[ "$(id -u)" = 0 ] || exit 77
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/lib.sh"
si_require docker-registry skopeo umoci jq htpasswd openssl
si_init_workdir registry-auth
W=$SI_WORK

si_step "build a test image" si_build_test_image "$W/img" t1

step_basic_tls() {
  sir_ca "$W/tls"
  htpasswd -Bbn alice alicepw >"$W/htpasswd"
  sir_registry basic "auth:
  htpasswd:
    realm: basic-realm
    path: $W/htpasswd" "  tls:
    certificate: $W/tls/server.pem
    key: $W/tls/server.key"
  B=$SIR_ADDR
  mkdir -p "$W/certs.d/$B"
  cat >"$W/certs.d/$B/hosts.toml" <<TOML
server = "https://$B"
[host."https://$B"]
  capabilities = ["pull", "resolve", "push"]
  ca = "$W/tls/ca.pem"
TOML
  # Push with --dest-creds, pull with --authfile.
  sir_copy --hosts-dir "$W/certs.d" --dest-creds alice:alicepw "oci:$W/img:t1" "docker://$B/basic/img:t1"
  printf '{"auths":{"%s":{"auth":"%s"}}}' "$B" "$(printf alice:alicepw | base64)" >"$W/auth.json"
  sir_copy --hosts-dir "$W/certs.d" --authfile "$W/auth.json" "docker://$B/basic/img:t1" "oci:$W/basic-out:t1"
  [ "$(sir_manifest_digest "$W/basic-out" t1)" = "$(sir_manifest_digest "$W/img" t1)" ] || si_fail "digest changed"
  # A credential helper named by credHelpers.
  mkdir -p "$W/bin"
  cat >"$W/bin/docker-credential-sitest" <<'SH'
#!/bin/sh
read -r url
echo "{\"ServerURL\":\"$url\",\"Username\":\"alice\",\"Secret\":\"alicepw\"}"
SH
  chmod +x "$W/bin/docker-credential-sitest"
  printf '{"credHelpers":{"%s":"sitest"}}' "$B" >"$W/helper.json"
  PATH="$W/bin:$PATH" sir_copy --hosts-dir "$W/certs.d" --authfile "$W/helper.json" \
    "docker://$B/basic/img:t1" "oci:$W/helper-out:t1"
  # skopeo pulls what we pushed over TLS with the same CA.
  mkdir -p "$W/skopeo-certs"
  cp "$W/tls/ca.pem" "$W/skopeo-certs/ca.crt"
  sir_skopeo inspect --cert-dir "$W/skopeo-certs" --creds alice:alicepw "docker://$B/basic/img:t1" >/dev/null
  # Wrong password: the error names the image, the host and the sources tried, not the secret.
  sir_expect_fail "basic/img:t1.*$B.*(401|UNAUTHORIZED).*--creds \(user alice\)" \
    sir_copy --hosts-dir "$W/certs.d" --src-creds alice:wrongpw "docker://$B/basic/img:t1" "oci:$W/x:t1"
  if grep -q wrongpw "$W/expect-fail.err"; then si_fail "the password appears in the error"; fi
  sir_expect_fail "helper.json.*docker-credential-sitest" sir_copy --hosts-dir "$W/certs.d" --authfile "$W/helper.json" \
    "docker://$B/basic/img:t1" "oci:$W/x:t1"  # helper not on PATH
  # Without the CA, verification fails (no silent downgrade).
  mkdir -p "$W/nocerts.d/$B"
  printf 'server = "https://%s"\n[host."https://%s"]\n' "$B" "$B" >"$W/nocerts.d/$B/hosts.toml"
  sir_expect_fail "certificate|SSL" sir_copy --hosts-dir "$W/nocerts.d" --src-creds alice:alicepw \
    "docker://$B/basic/img:t1" "oci:$W/x:t1"
}
si_step "htpasswd Basic auth over TLS with a test CA" step_basic_tls

step_token() {
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=token issuer" \
    -keyout "$W/token.key" -out "$W/token.pem" 2>/dev/null
  local tport
  tport=$(si_free_port)
  sir_pyserver token "$tport" token_server.py "$W/token.key" "$W/token.pem" "$tport" snapimport-test issuer-test
  sir_registry token "auth:
  token:
    realm: http://127.0.0.1:$tport/token
    service: snapimport-test
    issuer: issuer-test
    rootcertbundle: $W/token.pem"
  T=$SIR_ADDR
  sir_copy --dest-creds alice:alicepw "oci:$W/img:t1" "docker://$T/team/img:t1"
  [ "$(curl -fsS "http://127.0.0.1:$tport/_stats" | jq .post)" -ge 1 ] || si_fail "OAuth2 POST was not used"
  sir_copy --src-creds bob:bobpw "docker://$T/team/img:t1" "oci:$W/bob:t1"
  [ "$(sir_manifest_digest "$W/bob" t1)" = "$(sir_manifest_digest "$W/img" t1)" ] || si_fail "digest changed"
  sir_expect_fail "team/img:bob.*$T.*denied" sir_copy --dest-creds bob:bobpw "oci:$W/img:t1" "docker://$T/team/img:bob"
  grep -Eq "$T" "$W/expect-fail.err" || si_fail "the denial does not name the host"
  echo '{}' >"$W/empty.json"
  sir_expect_fail "team/img:t1.*$T.*credential sources tried.*empty.json.*anonymous" \
    sir_copy --authfile "$W/empty.json" "docker://$T/team/img:t1" "oci:$W/x:t1"
  # An identity token (refresh grant) from config.json.
  printf '{"auths":{"%s":{"identitytoken":"alice-refresh"}}}' "$T" >"$W/idtoken.json"
  sir_copy --authfile "$W/idtoken.json" "oci:$W/img:t1" "docker://$T/team/img:idt"
  # skopeo reads what alice pushed.
  sir_skopeo inspect --tls-verify=false --creds bob:bobpw "docker://$T/team/img:idt" >/dev/null
  # Tokens are cached per scope: far fewer token requests than registry requests.
  si_log "token server: $(curl -fsS "http://127.0.0.1:$tport/_stats")"
}
si_step "token auth with a JWT issuer; pull-only user is denied on push" step_token
si_print_timings
