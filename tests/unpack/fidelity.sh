#!/usr/bin/env bash
# Fidelity: an image built with GNU tar and umoci, unpacked layer by layer with
# `snapimport unpack` into overlay diff dirs and mounted read-only as an overlay stack, must equal
# `umoci unpack` of the same image (tests/unpack/treecmp.py prints the first difference).
# Needs root (mknod, chown, trusted.* xattrs, mount); exits 77 (skipped) otherwise.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${SNAPIMPORT_BIN:?SNAPIMPORT_BIN must point at the snapimport binary}
if [ "$(id -u)" -ne 0 ]; then echo "fidelity: needs root, skipping" >&2; exit 77; fi
for t in umoci tar setfattr python3 jq; do
  command -v "$t" >/dev/null || { echo "fidelity: $t missing, skipping" >&2; exit 77; }
done

work=$(mktemp -d /tmp/snapimport-fidelity-XXXXXX)
merged=$work/merged
cleanup() {
  mountpoint -q "$merged" 2>/dev/null && umount "$merged"
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
T=1700000000
stamp() { touch -h -d "@$T" "$@"; }

# --- Layer 1: GNU tar (pax, xattrs, numeric owners) of a tree with every entry type. ---------
s=$work/src1
mkdir -p "$s"/{etc,bin,usr/lib,odd/private,odd/sticky,odd/setgid,opq/keep,f2d_later,dead/inner,gone}
echo "root:x:0:0" >"$s/etc/passwd"
echo "hello" >"$s/etc/motd"
printf 'binary\0data' >"$s/bin/tool"
chmod 4755 "$s/bin/tool"                                  # setuid
printf 'ping' >"$s/bin/ping"
chmod 0755 "$s/bin/ping"
setfattr -n security.capability -v 0sAQAAAgAgAAAAAAAAAAAAAAAAAAA= "$s/bin/ping"  # cap_net_raw+ep
setfattr -n user.mime -v text/plain "$s/etc/motd"
head -c 3000000 /dev/urandom >"$s/usr/lib/libbig.so"
ln "$s/usr/lib/libbig.so" "$s/usr/lib/libbig.so.1"        # hardlink
ln -s /usr/lib/libbig.so "$s/usr/lib/abs-link"            # absolute symlink
ln -s ../lib/libbig.so.1 "$s/usr/lib/rel-link"            # relative symlink
ln -s does-not-exist "$s/usr/lib/dangling"
mkfifo "$s/odd/fifo"
mknod "$s/odd/null" c 1 3
mknod "$s/odd/loop9" b 7 9
chmod 0700 "$s/odd/private"; chmod 1777 "$s/odd/sticky"; chmod 2755 "$s/odd/setgid"
chmod 0555 "$s/odd"
chown 1000:1000 "$s/odd/private"; chown 65534:65533 "$s/etc/motd"
long=$(printf 'long-name-%.0s' $(seq 1 20))               # 200 chars, needs a PAX/GNU long name
mkdir -p "$s/deep/$long"; echo long >"$s/deep/$long/$long"
echo keep >"$s/opq/keep/file"; echo old >"$s/opq/old"
echo "will become a dir" >"$s/f2d"
echo x >"$s/dead/inner/x"
echo bye >"$s/gone/file"; echo bye >"$s/etc/remove-me"
find "$s" -exec touch -h -d "@$T" {} +
tar --xattrs --xattrs-include='*' --numeric-owner --format=pax -C "$s" -cf layer1.tar .

umoci init --layout img >/dev/null
umoci new --image img:t >/dev/null
umoci raw add-layer --image img:t layer1.tar >/dev/null

# --- Layer 2: umoci repack of changes made to an unpacked rootfs (explicit whiteouts). --------
umoci unpack --image img:t bundle >/dev/null
r=bundle/rootfs
rm -rf "$r/gone" "$r/etc/remove-me"                     # whiteouts
rm "$r/f2d"; mkdir "$r/f2d"; echo inside >"$r/f2d/child"  # file -> directory
rm -rf "$r/dead"; echo "was a dir" >"$r/dead"             # directory -> file
echo changed >"$r/etc/motd"
ln "$r/etc/passwd" "$r/etc/passwd-"
find "$r" -newer layer1.tar -exec touch -h -d "@$((T + 60))" {} +
umoci repack --image img:t bundle >/dev/null
rm -rf bundle

# --- Layer 3: GNU tar with an opaque marker, a whiteout and implicit parents. -----------------
s=$work/src3
mkdir -p "$s/opq" "$s/usr/lib" "$s/bin"
: >"$s/opq/.wh..wh..opq"
echo new >"$s/opq/new"
: >"$s/usr/lib/.wh.dangling"
echo added >"$s/usr/lib/added.so"
echo replaced >"$s/bin/tool"; chmod 0755 "$s/bin/tool"
mkdir -p "$s/f2d/child"; echo deeper >"$s/f2d/child/x"   # file (of layer 2) -> directory again
find "$s" -exec touch -h -d "@$((T + 120))" {} +
# Only the listed names: usr/, usr/lib/ and bin/ stay implicit parents.
(cd "$s" && tar --numeric-owner --format=pax --no-recursion -cf "$work/layer3.tar" \
  opq opq/.wh..wh..opq opq/new usr/lib/.wh.dangling usr/lib/added.so bin/tool f2d f2d/child f2d/child/x)
umoci raw add-layer --image img:t layer3.tar >/dev/null

# --- Reference: umoci unpack. ----------------------------------------------------------------
umoci unpack --image img:t ref >/dev/null

# --- snapimport: one diff dir per layer, then a read-only overlay of them. -------------------
manifest=$(jq -r '.manifests[0].digest' img/index.json | sed 's/sha256://')
lowers=()
i=0
while read -r digest media; do
  i=$((i + 1))
  blob=img/blobs/sha256/${digest#sha256:}
  mkdir "diff$i"
  args=()
  for l in "${lowers[@]}"; do args+=(--lower "$l"); done
  echo "fidelity: layer $i $media"
  "$bin" unpack --no-sync --media-type "$media" "${args[@]}" "$blob" "diff$i" | sed 's/^/  /'
  lowers=("diff$i" "${lowers[@]}")
done < <(jq -r '.layers[] | "\(.digest) \(.mediaType)"' "img/blobs/sha256/$manifest")

mkdir "$merged"
lowerdir=$(IFS=:; echo "${lowers[*]/#/$work/}")
mount -t overlay overlay -o "ro,lowerdir=$lowerdir" "$merged"
python3 "$here/treecmp.py" ref/rootfs "$merged"
