#!/usr/bin/env bash
# Faults injected by tests/registry/fault_registry.py: a connection dropped mid-blob resumes with
# Range (identical bytes), 503 and 429 + Retry-After are retried, a blob with wrong bytes is
# refused and nothing is written (into a layout or a real registry), oversize / malformed / schema1 manifests are refused with clear
# errors, Authorization is not forwarded on a redirect to another host, and an endless trickle
# hits the no-progress timeout, and a chunked push answered 416 mid-upload recovers from the
# session's Range and completes with the right bytes.
set -euo pipefail
[ "$(id -u)" = 0 ] || exit 77
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/lib.sh"
si_require umoci jq docker-registry
si_init_workdir registry-faults
W=$SI_WORK

step_setup() {
  si_build_test_image "$W/img" t1 >/dev/null
  FPORT=$(si_free_port)
  RPORT=$(si_free_port)
  sir_pyserver faults "$FPORT" fault_registry.py "$W/img" t1 "$FPORT" "$RPORT"
  F=127.0.0.1:$FPORT
  WANT=$(sir_manifest_digest "$W/img" t1)
}
si_step "start the fault registry" step_setup
stats() { curl -fsS "http://$F/_stats" | jq -r ".$1"; }

step_drop() {
  sir_copy "docker://$F/drop/img:t1" "oci:$W/drop:t1"
  diff -r "$W/img/blobs" "$W/drop/blobs" >/dev/null 2>&1 ||
    for f in "$W"/drop/blobs/sha256/*; do cmp "$f" "$W/img/blobs/sha256/${f##*/}"; done
  [ "$(stats ranges)" -ge 1 ] || si_fail "no Range request after the drop"
  [ "$(sir_manifest_digest "$W/drop" t1)" = "$WANT" ] || si_fail "digest changed"
}
si_step "a connection dropped mid-blob resumes with Range" step_drop

step_retry() {
  sir_copy "docker://$F/busy/img:t1" "oci:$W/busy:t1"
  local start=$SECONDS
  sir_copy "docker://$F/ratelimit/img:t1" "oci:$W/ratelimit:t1"
  [ $((SECONDS - start)) -ge 1 ] || si_fail "Retry-After: 1 was not honoured"
  sir_expect_fail "busy/img:t1.*503|UNAVAILABLE" sir_copy --retries 1 "docker://$F/busy/img:t2" "oci:$W/busy2:t2"
}
si_step "503 and 429 with Retry-After are retried" step_retry

step_bad_digest() {
  sir_expect_fail "baddigest/img.*$F.*hashes to" sir_copy "docker://$F/baddigest/img:t1" "oci:$W/bad:t1"
  local leftovers
  leftovers=$(find "$W/bad/blobs" -type f 2>/dev/null | while read -r f; do
    h=${f##*/}
    [ "$(sha256sum "$f" | cut -d' ' -f1)" = "$h" ] || echo "$f"
  done)
  [ -z "$leftovers" ] || si_fail "unverified files were written: $leftovers"
  if find "$W/bad" -name '.tmp-*' | grep -q .; then si_fail "temp files left behind"; fi
  [ ! -s "$W/bad/index.json" ] || ! jq -e '.manifests | length > 0' "$W/bad/index.json" >/dev/null ||
    si_fail "index.json names an image after a failed copy"
  # Into a real registry: the source's check stops the upload before its last bytes, so the
  # error is the source's, and the destination holds neither the blob nor the tag.
  si_start_registry
  sir_expect_fail "baddigest/img.*$F.*hashes to" sir_copy "docker://$F/baddigest/img:t1" "docker://$SI_REGISTRY/bad/img:t1"
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://$SI_REGISTRY/v2/bad/img/manifests/t1")
  [ "$code" = 404 ] || si_fail "bad/img:t1 answers $code after a refused copy; want 404"
  [ -z "$(find "$SI_WORK/registry/data" -path '*/blobs/sha256/*' -name data 2>/dev/null | while read -r f; do
    [ "$(sha256sum "$f" | cut -d' ' -f1)" = "$(basename "$(dirname "$f")")" ] || echo "$f"
  done)" ] || si_fail "the registry stored a blob under a digest its bytes do not have"
}
si_step "a blob that doesn't match its digest is refused and nothing is written" step_bad_digest

step_manifests() {
  sir_expect_fail "bigmanifest/img:t1.*$F.*larger than the 4 MiB limit" \
    sir_copy "docker://$F/bigmanifest/img:t1" "oci:$W/big:t1"
  sir_expect_fail "badjson/img:t1.*$F.*not valid JSON" sir_copy "docker://$F/badjson/img:t1" "oci:$W/badjson:t1"
  sir_expect_fail "schema1/img:t1.*schema1" sir_copy "docker://$F/schema1/img:t1" "oci:$W/s1:t1"
}
si_step "oversize, malformed and schema1 manifests are refused clearly" step_manifests

step_redirect() {
  sir_copy --src-creds user:pass "docker://$F/redirect/img:t1" "oci:$W/redirect:t1"
  [ "$(stats redirected)" -ge 1 ] || si_fail "no redirect happened"
  [ "$(stats auth_seen)" -ge 1 ] || si_fail "credentials never reached the registry"
  [ "$(stats auth_leaks)" = 0 ] || si_fail "Authorization was forwarded to another host on a redirect"
  [ "$(sir_manifest_digest "$W/redirect" t1)" = "$WANT" ] || si_fail "digest changed"
  if grep -rq 'sig=secret' "$SI_WORK"/expect-fail.err 2>/dev/null; then si_fail "presigned query leaked"; fi
}
si_step "Authorization is not forwarded on a redirect to another host" step_redirect

step_trickle() {
  local start=$SECONDS
  sir_expect_fail "trickle/img.*$F.*no progress" \
    sir_copy --no-progress-timeout 3 --retries 0 "docker://$F/trickle/img:t1" "oci:$W/trickle:t1"
  [ $((SECONDS - start)) -lt 60 ] || si_fail "the no-progress timeout took too long"
}
si_step "an endless trickle hits the no-progress timeout" step_trickle

step_tags_pages() {
  local tags
  tags=$("$SNAPIMPORT_BIN" tags "docker://$F/plain/img" | jq -r '.Tags | join(",")')
  [ "$tags" = "t0,t1,t2,t3,t4,t5,t6" ] || si_fail "tags across Link pages: got '$tags'"
}
si_step "tags follow Link pagination" step_tags_pages
step_chunked_416() {
  # Layers above 4096 bytes go up in 4096-byte PATCHes; the second PATCH of each upload keeps half
  # of its chunk and answers 416, so the client must GET the session and continue mid-chunk.
  SNAPIMPORT_CHUNK_SIZE=4096 "$SNAPIMPORT_BIN" copy "oci:$W/img:t1" "docker://$F/range416/img:t1" \
    2>"$W/push416.err" >/dev/null || { cat "$W/push416.err" >&2; si_fail "push with a 416 failed"; return 1; }
  si_log "fault registry: $(curl -fsS "http://$F/_stats")"
  [ "$(stats injected_416)" -ge 1 ] || si_fail "no PATCH was answered 416 (layers too small to chunk?)"
  [ "$(stats session_gets)" -ge "$(stats injected_416)" ] || si_fail "no GET on the session after 416"
  [ "$(stats unexpected_416)" = 0 ] || si_fail "a PATCH after recovery did not start where the session was"
  [ "$(stats uploads_bad)" = 0 ] || si_fail "an upload assembled the wrong bytes"
  grep -q "416" "$W/push416.err" || si_fail "the 416 recovery was not logged"
  # Every blob the fault registry holds hashes right (checked on PUT) and pulls back identical.
  sir_copy "docker://$F/range416/img:t1" "oci:$W/from416:t1"
  [ "$(sir_manifest_digest "$W/from416" t1)" = "$WANT" ] || si_fail "digest changed"
  for f in "$W"/from416/blobs/sha256/*; do cmp "$f" "$W/img/blobs/sha256/${f##*/}"; done
}
si_step "a chunked push answered 416 continues from the session's Range with correct bytes" step_chunked_416
si_print_timings
