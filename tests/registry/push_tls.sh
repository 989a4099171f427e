#!/usr/bin/env bash
# Chunked uploads and mutual TLS against real distribution registries:
#  - SNAPIMPORT_CHUNK_SIZE forces chunked PATCH uploads to a plain-http registry; skopeo and
#    snapimport pull back identical digests and bytes;
#  - --tls-verify=true (copy's --src-/--dest-, inspect, tags) refuses that plain-http 127.0.0.1
#    registry with a TLS error, while the default (containerd's loopback rule) uses it;
#  - a TLS registry that requires client certificates (http.tls.clientcas), with a CA the test
#    makes: hosts.toml `client = [["cert", "key"]]` lets snapimport push and pull, without it the
#    copy fails naming the host (a TLS alert, or with TLS 1.3 sometimes only a connection error); the connection negotiated HTTP/2 (the transport's debug log).
set -euo pipefail
[ "$(id -u)" = 0 ] || exit 77
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/lib.sh"
si_require docker-registry skopeo umoci jq openssl
si_init_workdir registry-push-tls
W=$SI_WORK

step_setup() {
  si_build_test_image "$W/img" t1 >/dev/null
  WANT=$(sir_manifest_digest "$W/img" t1)
}
si_step "build a test image" step_setup

step_chunked() {
  sir_registry plain ""
  P=$SIR_ADDR
  SNAPIMPORT_CHUNK_SIZE=4096 "$SNAPIMPORT_BIN" copy --log-level debug "oci:$W/img:t1" "docker://$P/chunked/img:t1" \
    >/dev/null 2>"$W/chunked.err" || { cat "$W/chunked.err" >&2; si_fail "chunked push failed"; return 1; }
  local patches
  patches=$(grep -c '"PATCH /v2/chunked/img/blobs/uploads/' "$SI_WORK/logs/reg-plain.log" || true)
  [ "$patches" -ge 2 ] || si_fail "expected several PATCH requests in the registry log, saw $patches"
  si_log "chunked push: $patches PATCH requests"
  local theirs
  theirs=$(sir_skopeo inspect --tls-verify=false "docker://$P/chunked/img:t1" | jq -r .Digest)
  [ "$theirs" = "$WANT" ] || si_fail "skopeo sees $theirs, pushed $WANT"
  sir_skopeo copy -q --src-tls-verify=false "docker://$P/chunked/img:t1" "oci:$W/skopeo-chunked:t1"
  sir_copy "docker://$P/chunked/img:t1" "oci:$W/ours-chunked:t1"
  [ "$(sir_manifest_digest "$W/skopeo-chunked" t1)" = "$WANT" ] || si_fail "skopeo pulled a different digest"
  [ "$(sir_manifest_digest "$W/ours-chunked" t1)" = "$WANT" ] || si_fail "snapimport pulled a different digest"
  local f
  for f in "$W"/ours-chunked/blobs/sha256/* "$W"/skopeo-chunked/blobs/sha256/*; do
    cmp "$f" "$W/img/blobs/sha256/${f##*/}" || si_fail "blob ${f##*/} differs"
  done
}
si_step "chunked PATCH push to distribution; skopeo and snapimport pull identical digests" step_chunked

step_forced_tls() {
  # containerd's loopback rule: a 127.0.0.1 registry without hosts.toml is plain http by default
  # (the pulls above). --src-tls-verify=true, --dest-tls-verify=true and inspect/tags
  # --tls-verify=true insist on verified https instead, and fail saying the server is not TLS.
  "$SNAPIMPORT_BIN" inspect "docker://$P/chunked/img:t1" >/dev/null || si_fail "inspect with the default TLS setting failed"
  "$SNAPIMPORT_BIN" tags "docker://$P/chunked/img" | grep -q '"t1"' || si_fail "tags with the default TLS setting failed"
  local pat="https://$P/.*SSL.*(does not speak TLS)"
  sir_expect_fail "$pat" sir_copy --src-tls-verify=true "docker://$P/chunked/img:t1" "oci:$W/forced:t1"
  sir_expect_fail "$pat" sir_copy --dest-tls-verify=true "oci:$W/img:t1" "docker://$P/forced/img:t1"
  sir_expect_fail "$pat" "$SNAPIMPORT_BIN" inspect --tls-verify=true "docker://$P/chunked/img:t1"
  sir_expect_fail "$pat" "$SNAPIMPORT_BIN" tags --tls-verify=true "docker://$P/chunked/img"
  [ ! -e "$W/forced" ] || [ -z "$(ls -A "$W/forced/blobs/sha256" 2>/dev/null)" ] || si_fail "a refused pull wrote blobs"
}
si_step "--tls-verify=true refuses a plain-http 127.0.0.1 registry the default accepts" step_forced_tls

step_mtls() {
  sir_ca "$W/tls"
  local t=$W/tls
  openssl req -newkey rsa:2048 -nodes -subj "/CN=snapimport client" -keyout "$t/client.key" -out "$t/client.csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' >"$t/client-ext.cnf"
  openssl x509 -req -in "$t/client.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial -days 2 \
    -extfile "$t/client-ext.cnf" -out "$t/client.pem" 2>/dev/null
  sir_registry mtls "" "  tls:
    certificate: $t/server.pem
    key: $t/server.key
    clientcas:
      - $t/ca.pem"
  M=$SIR_ADDR
  mkdir -p "$W/certs.d/$M" "$W/nocert.d/$M"
  cat >"$W/certs.d/$M/hosts.toml" <<TOML
server = "https://$M"
[host."https://$M"]
  capabilities = ["pull", "resolve", "push"]
  ca = "$t/ca.pem"
  client = [["$t/client.pem", "$t/client.key"]]
TOML
  cat >"$W/nocert.d/$M/hosts.toml" <<TOML
server = "https://$M"
[host."https://$M"]
  capabilities = ["pull", "resolve", "push"]
  ca = "$t/ca.pem"
TOML
  "$SNAPIMPORT_BIN" copy -q --hosts-dir "$W/certs.d" "oci:$W/img:t1" "docker://$M/mtls/img:t1" >/dev/null
  "$SNAPIMPORT_BIN" copy --log-level debug --hosts-dir "$W/certs.d" "docker://$M/mtls/img:t1" "oci:$W/mtls-out:t1" \
    >/dev/null 2>"$W/mtls-pull.err" || { cat "$W/mtls-pull.err" >&2; si_fail "pull with a client cert failed"; return 1; }
  [ "$(sir_manifest_digest "$W/mtls-out" t1)" = "$WANT" ] || si_fail "digest changed over mTLS"
  # Forced verification works against a real TLS registry whose CA hosts.toml names.
  sir_copy --src-tls-verify=true --hosts-dir "$W/certs.d" "docker://$M/mtls/img:t1" "oci:$W/mtls-verified:t1" ||
    si_fail "--src-tls-verify=true failed against a TLS registry with its CA in hosts.toml"
  local f
  for f in "$W"/mtls-out/blobs/sha256/*; do cmp "$f" "$W/img/blobs/sha256/${f##*/}" || si_fail "blob ${f##*/} differs"; done
  # Without the client certificate the registry refuses the connection and the copy fails naming
  # the host and the cause. With TLS 1.3 the server's alert can arrive after libcurl considers
  # the handshake done, so libcurl sees either "alert bad certificate" or only a dead connection;
  # the transport then says the server closed the TLS connection and points at `client`.
  local pat="(SSL|TLS|certificate)"
  sir_expect_fail "$M.*$pat" \
    sir_copy --retries 0 --hosts-dir "$W/nocert.d" "docker://$M/mtls/img:t1" "oci:$W/x:t1"
  sir_expect_fail "$M.*$pat" \
    sir_copy --retries 0 --hosts-dir "$W/nocert.d" "oci:$W/img:t1" "docker://$M/mtls/img:t2"
  # With the default retries such a refusal is tried once more, not five times with backoff: the
  # registry logs one TLS handshake error per connection we make.
  local before after
  before=$(grep -c 'TLS handshake error' "$SI_WORK/logs/reg-mtls.log" || true)
  sir_expect_fail "$M.*$pat" sir_copy --hosts-dir "$W/nocert.d" "docker://$M/mtls/img:t1" "oci:$W/z:t1"
  after=$(grep -c 'TLS handshake error' "$SI_WORK/logs/reg-mtls.log" || true)
  [ "$before" -gt 0 ] || si_fail "the registry log shows no TLS handshake errors to count"
  [ $((after - before)) -le 2 ] || si_fail "a refused client certificate was tried $((after - before)) times"
}
si_step "a registry requiring client certificates: hosts.toml client pair works, none fails" step_mtls

step_http2() {
  # Go's TLS server offers h2; the transport logs the negotiated protocol at debug level.
  si_log "transport: $(grep -m1 -E 'proto' "$W/mtls-pull.err" | head -c 300)"
  grep -E '"?proto"?[=:] ?"?HTTP/2' "$W/mtls-pull.err" >/dev/null || {
    grep -m3 -E 'proto' "$W/mtls-pull.err" >&2 || true
    si_fail "the TLS registry was not reached over HTTP/2"
  }
  if grep -E '"?proto"?[=:] ?"?HTTP/1' "$W/mtls-pull.err" >/dev/null; then
    si_fail "some requests to the TLS registry used HTTP/1.1"
  fi
  # And the plain-http registry stays on HTTP/1.1 (no h2c).
  grep -E '"?proto"?[=:] ?"?HTTP/1.1' "$W/chunked.err" >/dev/null || si_fail "plain http did not log HTTP/1.1"
}
si_step "the TLS registry is reached over HTTP/2" step_http2
si_print_timings
