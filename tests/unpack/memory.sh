#!/usr/bin/env bash
# Issue 5, acceptance 5: peak RSS of `snapimport unpack` while it extracts a 1 GiB layer stays
# under 64 MiB. The layer is generated on the fly (16 files of 64 MiB and 20,000 small files in
# 200 directories), gzip-compressed by igzip and streamed into the command's stdin, so the test
# needs no 1 GiB file of its own; the extraction itself writes 1 GiB to a real disk under /var/tmp.
set -euo pipefail
bin=${SNAPIMPORT_BIN:?SNAPIMPORT_BIN must point at the snapimport binary}
limit_kib=$((64 << 10))
for t in igzip python3 /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "memory: $t missing (scripts/setup.sh installs it)" >&2; exit 77; }
done
work=$(mktemp -d /var/tmp/snapimport-unpack-memory-XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "memory: FAIL: $*" >&2; exit 1; }

python3 - <<'PY' | igzip -1 -c | /usr/bin/time -o "$work/rss" -f '%M' \
  "$bin" unpack --no-sync --media-type gzip - "$work/dest" >"$work/out"
import sys, tarfile
out = sys.stdout.buffer
zeros = bytes(1 << 20)

def header(name, size, kind=tarfile.REGTYPE):
    info = tarfile.TarInfo(name)
    info.size, info.type, info.mode, info.mtime = size, kind, 0o755 if kind == tarfile.DIRTYPE else 0o644, 1700000000
    out.write(info.tobuf(format=tarfile.PAX_FORMAT))

def pad(size):
    if size % 512:
        out.write(bytes(512 - size % 512))

for i in range(16):
    header("big/blob%02d" % i, 64 << 20)
    for _ in range(64):
        out.write(zeros)
for d in range(200):
    header("small/d%03d" % d, 0, tarfile.DIRTYPE)
    for f in range(100):
        body = (b"file %d/%d\n" % (d, f)) * (1 + f % 40)
        header("small/d%03d/f%03d" % (d, f), len(body))
        out.write(body)
        pad(len(body))
out.write(bytes(1024))
PY
bytes=$(sed -n 's/^uncompressed_bytes=//p' "$work/out")
entries=$(sed -n 's/^entries=//p' "$work/out")
rss=$(tail -1 "$work/rss")
echo "memory: $bytes bytes of tar, $entries entries, peak RSS $rss KiB (limit $limit_kib KiB)"
[ "$bytes" -ge $((1 << 30)) ] || fail "layer was only $bytes bytes"
[ "$entries" = 20216 ] || fail "expected 20216 entries, got $entries"
[ "$(stat -c %s "$work/dest/big/blob15")" = $((64 << 20)) ] || fail "big/blob15 has the wrong size"
[ -s "$work/dest/small/d199/f099" ] || fail "small/d199/f099 missing"
[ "$rss" -lt "$limit_kib" ] || fail "peak RSS $rss KiB is over $limit_kib KiB"
echo "memory: ok"
