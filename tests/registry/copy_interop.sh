#!/usr/bin/env bash
# Anonymous plain-http distribution registry: pull and push with snapimport, interop with skopeo
# (both directions, identical digests), oci:/docker-archive:/dir: round trips byte for byte, a
# multi-platform index with --all, gzip and zstd layers, inspect and paginated tags.
set -euo pipefail
[ "$(id -u)" = 0 ] || exit 77
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/lib.sh"
si_require docker-registry skopeo umoci jq
si_init_workdir registry-interop
si_start_registry
R=$SI_REGISTRY
W=$SI_WORK

step_skopeo_push() {
  si_build_test_image "$W/img" t1 >/dev/null
  sir_skopeo copy -q --dest-tls-verify=false "oci:$W/img:t1" "docker://$R/interop/img:t1"
}
si_step "skopeo pushes a test image" step_skopeo_push

step_pull_to_layouts() {
  sir_copy "docker://$R/interop/img:t1" "oci:$W/out:t1"
  sir_copy "docker://$R/interop/img:t1" "docker-archive:$W/img.tar:interop/img:t1"
  sir_copy "docker://$R/interop/img:t1" "dir:$W/dir"
  # The manifest is byte-identical to what skopeo pushed.
  local want got
  want=$(sir_manifest_digest "$W/img" t1)
  got=$(sir_manifest_digest "$W/out" t1)
  [ "$want" = "$got" ] || si_fail "oci: copy changed the manifest digest ($want -> $got)"
  # skopeo reads all three back.
  sir_skopeo inspect "oci:$W/out:t1" >/dev/null
  sir_skopeo inspect "docker-archive:$W/img.tar" >/dev/null
  sir_skopeo copy -q "docker-archive:$W/img.tar" "oci:$W/from-archive:t1"
  sir_skopeo copy -q "dir:$W/dir" "oci:$W/from-dir:t1"
  [ "$(sir_manifest_digest "$W/from-dir" t1)" = "$want" ] || si_fail "skopeo read a different manifest from dir:"
  # grep reads the whole listing: with -q it could exit early and SIGPIPE tar under pipefail.
  tar -tf "$W/img.tar" | grep -x manifest.json >/dev/null || si_fail "docker-archive has no manifest.json"
}
si_step "snapimport copies to oci:, docker-archive: and dir:; skopeo reads them" step_pull_to_layouts

step_push_skopeo_pulls() {
  sir_copy "oci:$W/out:t1" "docker://$R/pushed/img:t2"
  local ours theirs
  ours=$("$SNAPIMPORT_BIN" inspect "docker://$R/pushed/img:t2" | jq -r .Digest)
  theirs=$(sir_skopeo inspect --tls-verify=false "docker://$R/pushed/img:t2" | jq -r .Digest)
  [ "$ours" = "$theirs" ] && [ "$ours" = "$(sir_manifest_digest "$W/img" t1)" ] ||
    si_fail "digests differ: snapimport $ours, skopeo $theirs"
  sir_skopeo copy -q --src-tls-verify=false "docker://$R/pushed/img:t2" "oci:$W/skopeo-pulled:t2"
  [ "$(sir_manifest_digest "$W/skopeo-pulled" t2)" = "$ours" ] || si_fail "skopeo pulled a different digest"
  # A second push skips every blob (HEAD first).
  "$SNAPIMPORT_BIN" copy "oci:$W/out:t1" "docker://$R/pushed/img:t3" 2>"$W/second.err" >/dev/null
  grep -q "already present" "$W/second.err" || si_fail "second push did not skip existing blobs"
  # Cross-repository mount within one registry.
  sir_copy "docker://$R/pushed/img:t2" "docker://$R/mounted/img:t1"
  grep -q 'mount=sha256' "$SI_WORK/logs/registry.log" || si_fail "no cross-repository mount was tried"
}
si_step "snapimport pushes; skopeo pulls identical digests; HEAD skip; cross-repo mount" step_push_skopeo_pulls

step_roundtrips() {
  # oci -> registry -> oci, archive -> oci, dir -> oci: identical blobs and manifests.
  sir_copy "docker://$R/pushed/img:t2" "oci:$W/rt:t1"
  diff -r "$W/out/blobs" "$W/rt/blobs" || si_fail "oci: round trip is not byte-identical"
  sir_copy "docker-archive:$W/img.tar" "oci:$W/rt-archive:t1"
  [ "$(sir_manifest_digest "$W/rt-archive" t1)" = "$(sir_manifest_digest "$W/out" t1)" ] ||
    si_fail "docker-archive round trip changed the manifest"
  sir_copy "dir:$W/dir" "oci:$W/rt-dir:t1"
  diff -r "$W/out/blobs" "$W/rt-dir/blobs" || si_fail "dir: round trip is not byte-identical"
  # An archive written by skopeo (classic docker save form) is read too.
  sir_skopeo copy -q "oci:$W/img:t1" "docker-archive:$W/skopeo.tar:x/y:z"
  sir_copy "docker-archive:$W/skopeo.tar" "docker://$R/from-skopeo-archive/img:t1"
  sir_skopeo inspect --tls-verify=false "docker://$R/from-skopeo-archive/img:t1" >/dev/null
}
si_step "layouts round-trip byte-identically; skopeo's docker-archive is read" step_roundtrips

step_multiarch() {
  sir_multiarch_layout "$W/multi" idx
  sir_skopeo copy -q --all --dest-tls-verify=false "oci:$W/multi:idx" "docker://$R/multi/img:idx"
  sir_copy --all "docker://$R/multi/img:idx" "oci:$W/multi-out:idx"
  [ "$(sir_manifest_digest "$W/multi-out" idx)" = "$(sir_manifest_digest "$W/multi" idx)" ] ||
    si_fail "--all changed the index digest"
  sir_copy --all "oci:$W/multi-out:idx" "docker://$R/multi2/img:idx"
  local d
  d=$(sir_skopeo inspect --raw --tls-verify=false "docker://$R/multi2/img:idx" | sha256sum | cut -d' ' -f1)
  [ "sha256:$d" = "$(sir_manifest_digest "$W/multi" idx)" ] || si_fail "index pushed with --all differs"
  # Without --all, --platform picks one image (arm64/v8 normalises to arm64).
  sir_copy --platform linux/arm64/v8 "docker://$R/multi/img:idx" "oci:$W/arm:one"
  local want
  want=$(jq -r '.manifests[] | select(.platform.architecture=="arm64") | .digest' \
    "$W/multi/blobs/sha256/$(sir_manifest_digest "$W/multi" idx | cut -d: -f2)")
  [ "$(sir_manifest_digest "$W/arm" one)" = "$want" ] || si_fail "--platform linux/arm64/v8 picked the wrong image"
  sir_expect_fail "holds a single image" sir_copy --all "docker://$R/multi/img:idx" "docker-archive:$W/multi.tar"
}
si_step "multi-platform index round-trips with --all; --platform selects" step_multiarch

step_compression() {
  # skopeo writes zstd layers into a layout (it keeps compressed inputs as they are, and reuses
  # known gzip blobs on registries, so decompress first and write to oci:).
  sir_skopeo copy -q --dest-decompress "oci:$W/img:t1" "oci:$W/plain:t1"
  sir_skopeo copy -q --dest-compress-format zstd --dest-compress "oci:$W/plain:t1" "oci:$W/zstd-src:t1"
  "$SNAPIMPORT_BIN" inspect "oci:$W/zstd-src:t1" | jq -r '.LayersData[].MIMEType' | grep -q zstd ||
    si_fail "skopeo did not produce zstd layers"
  sir_copy "oci:$W/zstd-src:t1" "docker://$R/zstd/img:t1"
  sir_skopeo copy -q --src-tls-verify=false "docker://$R/zstd/img:t1" "oci:$W/zstd-skopeo:t1"
  [ "$(sir_manifest_digest "$W/zstd-skopeo" t1)" = "$(sir_manifest_digest "$W/zstd-src" t1)" ] ||
    si_fail "zstd image changed on the way through the registry"
  sir_copy "docker://$R/zstd/img:t1" "oci:$W/zstd:t1"
  diff -r "$W/zstd-src/blobs" "$W/zstd/blobs" || si_fail "zstd blobs differ after the round trip"
  # Uncompressed layers too.
  sir_copy "oci:$W/plain:t1" "docker://$R/plain/img:t1"
  sir_copy "docker://$R/plain/img:t1" "oci:$W/plain-back:t1"
  [ "$(sir_manifest_digest "$W/plain-back" t1)" = "$(sir_manifest_digest "$W/plain" t1)" ] || si_fail "plain image changed"
  "$SNAPIMPORT_BIN" inspect "oci:$W/out:t1" | jq -r '.LayersData[].MIMEType' | grep -q gzip ||
    si_fail "expected gzip layers in the base image"
}
si_step "zstd and gzip layers" step_compression

step_inspect_tags() {
  local i
  for i in $(seq 1 12); do
    "$SNAPIMPORT_BIN" copy -q "docker://$R/interop/img:t1" "docker://$R/many/img:v$i" >/dev/null
  done
  local tags
  tags=$("$SNAPIMPORT_BIN" tags "docker://$R/many/img" | jq -r '.Tags | length')
  [ "$tags" = 12 ] || si_fail "tags listed $tags, want 12"
  # (distribution 2.8 does not paginate tags; faults.sh checks Link pagination.)
  "$SNAPIMPORT_BIN" inspect --config "docker://$R/interop/img:t1" | jq -e .rootfs.diff_ids >/dev/null
  "$SNAPIMPORT_BIN" inspect --raw "docker://$R/interop/img:t1" | jq -e .layers >/dev/null
  sir_expect_fail "MANIFEST_UNKNOWN|not found|404" "$SNAPIMPORT_BIN" inspect "docker://$R/interop/img:nope"
  sir_expect_fail "interop/img:nope" "$SNAPIMPORT_BIN" inspect "docker://$R/interop/img:nope"
}
si_step "inspect and tags" step_inspect_tags
# A layout whose largest layer has one byte changed (same size). A push hashes each blob once: the
# registry does, on the upload that closes with ?digest=, and refuses it; the copy names the
# source and the blob, and nothing is tagged. A copy between layouts hashes on the source side
# and fails before the last bytes are written. Both monolithic and chunked uploads.
step_corrupt_source() {
  cp -a "$W/img" "$W/corrupt"
  local m layer file
  m=$(sir_manifest_digest "$W/corrupt" t1)
  layer=$(jq -r '.layers | max_by(.size) | .digest' "$W/corrupt/blobs/sha256/${m#sha256:}")
  file=$W/corrupt/blobs/sha256/${layer#sha256:}
  [ "$(stat -c %s "$file")" -gt 600000 ] || si_fail "the largest layer is too small to go up in several chunks"
  printf 'X' | dd of="$file" bs=1 seek=500000 conv=notrunc status=none
  local want="oci:$W/corrupt:t1: blob $layer does not match its digest: docker://$R/corrupt/img:t1 hashed the bytes read from it and refused them.*DIGEST_INVALID"
  sir_expect_fail "$want" sir_copy "oci:$W/corrupt:t1" "docker://$R/corrupt/img:t1"
  want="oci:$W/corrupt:t1: blob $layer does not match its digest: docker://$R/corrupt/chunked:t1 hashed.*DIGEST_INVALID"
  SNAPIMPORT_CHUNK_SIZE=262144 sir_expect_fail "$want" sir_copy "oci:$W/corrupt:t1" "docker://$R/corrupt/chunked:t1"
  local repo code
  for repo in corrupt/img corrupt/chunked; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://$R/v2/$repo/manifests/t1")
    [ "$code" = 404 ] || si_fail "$repo:t1 answers $code after a refused push; want 404"
    code=$(curl -s -o /dev/null -w '%{http_code}' -I "http://$R/v2/$repo/blobs/$layer")
    [ "$code" = 404 ] || si_fail "$repo has the refused blob (HEAD answers $code)"
  done
  sir_expect_fail "oci:$W/corrupt:t1: blob $layer in .* hashes to sha256:.*; refusing it" \
    sir_copy "oci:$W/corrupt:t1" "oci:$W/corrupt-copy:t1"
  [ ! -e "$W/corrupt-copy/blobs/sha256/${layer#sha256:}" ] || si_fail "the layout copy kept the corrupt blob"
  if [ -e "$W/corrupt-copy/index.json" ] && jq -e '.manifests | length > 0' "$W/corrupt-copy/index.json" >/dev/null; then
    si_fail "the layout copy tagged an image with a corrupt blob"
  fi
}
si_step "a corrupt blob in a layout: the push is refused and names it; nothing is tagged" step_corrupt_source
si_print_timings
