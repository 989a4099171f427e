#!/usr/bin/env bash
# `snapimport unpack` as a user sees it: stdin input, media-type guessing, the printed diff_id,
# clear refusals with exit code 1, and cleanup after a failure.
set -euo pipefail
bin=${SNAPIMPORT_BIN:?SNAPIMPORT_BIN must point at the snapimport binary}
work=$(mktemp -d /tmp/snapimport-unpack-cli-XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "cli: FAIL: $*" >&2; exit 1; }

mkdir src && echo hello >src/f && mkdir src/d && ln -s f src/l
tar -C src -cf layer.tar .
want=sha256:$(sha256sum <layer.tar | cut -d' ' -f1)
gzip -c layer.tar >layer.tgz
zstd -q -c layer.tar >layer.tzst

for input in layer.tar layer.tgz layer.tzst; do
  out=$("$bin" unpack --no-sync "$input" "out-$input")
  grep -qx "diff_id=$want" <<<"$out" || fail "$input: diff_id: $out"
  [ "$(cat "out-$input/f")" = hello ] || fail "$input: content"
done
grep -q "media_type=application/vnd.oci.image.layer.v1.tar+zstd" <<<"$out" || fail "zstd not guessed"

out=$("$bin" unpack --no-sync --media-type gzip - from-stdin <layer.tgz)
grep -qx "diff_id=$want" <<<"$out" || fail "stdin: $out"
! grep -q "compressed_digest=" <<<"$out" || fail "compressed digest printed without --compressed-digest"
out=$("$bin" unpack --no-sync --compressed-digest --media-type gzip - digest <layer.tgz)
grep -qx "diff_id=$want" <<<"$out" || fail "--compressed-digest: $out"
grep -qx "compressed_digest=sha256:$(sha256sum <layer.tgz | cut -d' ' -f1)" <<<"$out" || fail "stdin digest"

set +e
"$bin" unpack --media-type application/vnd.in-toto+json layer.tar bad-type 2>err; rc=$?
set -e
[ "$rc" = 1 ] || fail "unknown media type exit code $rc"
grep -q 'unknown layer media type' err || fail "unknown media type message: $(cat err)"

head -c $(($(stat -c %s layer.tgz) - 12)) layer.tgz >truncated.tgz
set +e
"$bin" unpack --no-sync truncated.tgz truncated >/dev/null 2>err; rc=$?
set -e
[ "$rc" = 1 ] || fail "truncated exit code $rc"
grep -q 'gzip' err || fail "truncated message: $(cat err)"
[ -z "$(ls -A truncated)" ] || fail "truncated layer left files behind"

set +e
"$bin" unpack --no-sync layer.tar out-layer.tar >/dev/null 2>err; rc=$?
set -e
[ "$rc" = 1 ] && grep -q 'not empty' err || fail "non-empty target accepted"
echo "cli: ok"
