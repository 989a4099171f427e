# shellcheck shell=bash
# Builds the import benchmark's images as OCI layouts, deterministically, without umoci or a daemon:
# every layer is `tar --sort`-ordered with fixed mtimes and owners, compressed with `gzip -n`, and
# the config, manifest and index are written with jq. Sourced by bench/import/run.sh.
#
#   bi_build_large DIR SCALE   6 layers of real files from this machine's /usr plus generated text
#                              and incompressible data; at SCALE=1 about 1.6 GB unpacked and
#                              ~600 MB compressed
#   bi_build_small DIR SCALE   4 layers with 100k small text files in all at SCALE=1
#
# A finished layout holds `.complete`; callers reuse it instead of rebuilding. The files copied
# from /usr make the images specific to this machine's installed packages (stable across reruns,
# not across machines); the generated parts are byte-identical everywhere.

BI_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BI_PY=${BI_PY:-/usr/bin/python3}
BI_RECIPE=v2 # bump when a recipe changes, so cached images are rebuilt

bi_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# bi_bytes MIB SCALE -> bytes
bi_bytes() { awk -v m="$1" -v s="$2" 'BEGIN { printf "%d", m * 1048576 * s }'; }

bi_tar() { # bi_tar OUT.tar -C DIR [tar args...]: reproducible tar
  local out=$1
  shift
  tar --create --file "$out" --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    --mtime=@0 --owner=0 --group=0 --numeric-owner "$@"
}

# bi_layer_from_usr WORK N MIB SCALE SRC...: layer N from real files under SRCs (budget MIB*SCALE)
bi_layer_from_usr() {
  local work=$1 n=$2 mib=$3 scale=$4
  shift 4
  "$BI_PY" "$BI_DIR/gen.py" list "$(bi_bytes "$mib" "$scale")" "$@" >"$work/layer$n.list"
  bi_tar "$work/layer$n.tar" -C / --no-recursion --verbatim-files-from --files-from "$work/layer$n.list"
}

# bi_layer_from_dir WORK N DIR: layer N from everything in DIR (names sorted)
bi_layer_from_dir() {
  local work=$1 n=$2 dir=$3
  bi_tar "$work/layer$n.tar" --sort=name -C "$dir" .
}

# bi_random_files DIR TOTAL_BYTES COUNT SEED: incompressible but reproducible data (AES-CTR stream)
bi_random_files() {
  local dir=$1 total=$2 count=$3 seed=$4 i
  mkdir -p "$dir"
  for ((i = 0; i < count; i++)); do
    # openssl dies of SIGPIPE when head has enough; that is the expected end, not a failure.
    { openssl enc -aes-128-ctr -nosalt -K "$(printf '%032x' "$((seed * 1000 + i))")" -iv 0 -in /dev/zero 2>/dev/null || true; } |
      head -c "$((total / count))" >"$dir/blob-$i.bin"
    [ "$(stat -c %s "$dir/blob-$i.bin")" -eq "$((total / count))" ] || return 1
  done
}

# bi_compress WORK N: layerN.tar -> blob; writes layerN.{diffid,digest,size}
bi_compress() {
  local work=$1 n=$2 t=$1/layer$2.tar
  local diffid digest
  diffid=$(sha256sum "$t" | cut -d' ' -f1)
  gzip -n -6 -c "$t" >"$t.gz"
  digest=$(sha256sum "$t.gz" | cut -d' ' -f1)
  mkdir -p "$work/blobs"
  mv "$t.gz" "$work/blobs/$digest"
  echo "sha256:$diffid" >"$work/layer$n.diffid"
  echo "sha256:$digest" >"$work/layer$n.digest"
  stat -c %s "$work/blobs/$digest" >"$work/layer$n.size"
  stat -c %s "$t" >"$work/layer$n.usize"
  rm -f "$t"
}

# bi_assemble WORK OCI TAG NLAYERS: OCI layout from the compressed layers
bi_assemble() {
  local work=$1 oci=$2 tag=$3 nl=$4 i
  mkdir -p "$oci/blobs/sha256"
  local diffids="[]" layers="[]" history="[]"
  for ((i = 1; i <= nl; i++)); do
    local d s
    d=$(cat "$work/layer$i.digest")
    s=$(cat "$work/layer$i.size")
    mv "$work/blobs/${d#sha256:}" "$oci/blobs/sha256/${d#sha256:}"
    diffids=$(jq -c --arg d "$(cat "$work/layer$i.diffid")" '. + [$d]' <<<"$diffids")
    layers=$(jq -c --arg d "$d" --argjson s "$s" \
      '. + [{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $d, size: $s}]' <<<"$layers")
    history=$(jq -c --arg c "snapimport bench layer $i" '. + [{created: "1970-01-01T00:00:00Z", created_by: $c}]' <<<"$history")
  done
  local cfg="$work/config.json"
  jq -cn --argjson diffids "$diffids" --argjson history "$history" '{
      created: "1970-01-01T00:00:00Z", architecture: "amd64", os: "linux",
      config: {Env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: ["/bin/sh"], WorkingDir: "/"},
      rootfs: {type: "layers", diff_ids: $diffids}, history: $history}' | tr -d '\n' >"$cfg"
  local cd cs
  cd=$(sha256sum "$cfg" | cut -d' ' -f1)
  cs=$(stat -c %s "$cfg")
  mv "$cfg" "$oci/blobs/sha256/$cd"
  local man="$work/manifest.json"
  jq -cn --arg cd "sha256:$cd" --argjson cs "$cs" --argjson layers "$layers" '{
      schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $cd, size: $cs},
      layers: $layers}' | tr -d '\n' >"$man"
  local md ms
  md=$(sha256sum "$man" | cut -d' ' -f1)
  ms=$(stat -c %s "$man")
  mv "$man" "$oci/blobs/sha256/$md"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$oci/oci-layout"
  jq -cn --arg md "sha256:$md" --argjson ms "$ms" --arg tag "$tag" '{
      schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $md, size: $ms,
                   annotations: {"org.opencontainers.image.ref.name": $tag}}]}' >"$oci/index.json"
}

# bi_summary OCI WORK NLAYERS: one line per layer plus totals (stderr and $OCI/summary.txt)
bi_summary() {
  local oci=$1 work=$2 nl=$3 i c=0 u=0
  for ((i = 1; i <= nl; i++)); do
    local cs us
    cs=$(cat "$work/layer$i.size")
    us=$(cat "$work/layer$i.usize")
    c=$((c + cs))
    u=$((u + us))
    printf '  layer %d: %s  %6d MB compressed  %6d MB tar\n' "$i" "$(cut -c8-19 "$work/layer$i.digest")" \
      $((cs / 1000000)) $((us / 1000000))
  done >"$oci/summary.txt"
  printf '  total:   %d layers, %d MB compressed, %d MB tar\n' "$nl" $((c / 1000000)) $((u / 1000000)) \
    >>"$oci/summary.txt"
}

# bi_wait_slot JOBS: wait until fewer than JOBS background jobs run.
# (A failed job leaves no layerN.digest; bi_build checks for them.)
bi_wait_slot() {
  while [ "$(jobs -rp | wc -l)" -ge "$1" ]; do wait -n || true; done
}

bi_wait_all() { wait || true; }

# Usage: bi_build NAME OCI SCALE: runs bi_recipe_NAME, then assembles and marks the layout complete.
bi_build() {
  local name=$1 oci=$2 scale=$3
  if [ -f "$oci/.complete" ]; then
    bi_log "image $name (scale $scale): cached in $oci"
    cat "$oci/summary.txt" >&2
    return 0
  fi
  rm -rf "$oci" "$oci.work"
  local work=$oci.work
  mkdir -p "$work"
  local start=$SECONDS nl
  bi_log "building image $name (scale $scale) in $oci"
  nl=$("bi_recipe_$name" "$work" "$scale")
  local i
  for ((i = 1; i <= nl; i++)); do
    [ -s "$work/layer$i.digest" ] || { bi_log "building layer $i of image $name failed"; return 1; }
  done
  bi_assemble "$work" "$oci" latest "$nl"
  bi_summary "$oci" "$work" "$nl"
  echo "$BI_RECIPE scale=$scale" >"$oci/.complete"
  rm -rf "$work"
  bi_log "built image $name in $((SECONDS - start))s:"
  cat "$oci/summary.txt" >&2
}

# Each recipe builds and compresses its layers (two at a time: this is a 2-core machine) and
# prints the number of layers on stdout.
bi_recipe_large() {
  local w=$1 s=$2
  {
    bi_layer_from_usr "$w" 1 300 "$s" usr/lib/x86_64-linux-gnu && bi_compress "$w" 1
  } >&2 &
  {
    bi_layer_from_usr "$w" 2 330 "$s" usr/bin usr/sbin usr/libexec && bi_compress "$w" 2
  } >&2 &
  bi_wait_slot 2 >&2 || return 1
  {
    bi_layer_from_usr "$w" 3 300 "$s" usr/lib/go-1.19 usr/lib/python3.11 usr/lib/python3 usr/lib/gcc &&
      bi_compress "$w" 3
  } >&2 &
  bi_wait_slot 2 >&2 || return 1
  {
    bi_layer_from_usr "$w" 4 290 "$s" usr/share usr/include && bi_compress "$w" 4
  } >&2 &
  bi_wait_slot 2 >&2 || return 1
  {
    # Application data: generated logs and sources (compress well) and opaque blobs (don't).
    "$BI_PY" "$BI_DIR/gen.py" text "$w/gen5/srv/data/logs" "$(bi_bytes 110 "$s")" 5 &&
      bi_random_files "$w/gen5/srv/data/models" "$(bi_bytes 90 "$s")" 6 5 &&
      bi_layer_from_dir "$w" 5 "$w/gen5" && rm -rf "$w/gen5" && bi_compress "$w" 5
  } >&2 &
  bi_wait_slot 2 >&2 || return 1
  {
    bi_layer_from_usr "$w" 6 90 "$s" usr/lib/jvm usr/lib/llvm-14 && bi_compress "$w" 6
  } >&2 &
  bi_wait_all >&2 || return 1
  echo 6
}

bi_recipe_small() {
  local w=$1 s=$2 i files
  files=$(awk -v s="$s" 'BEGIN { printf "%d", 25000 * s }')
  for i in 1 2 3 4; do
    bi_wait_slot 2 >&2 || return 1
    {
      "$BI_PY" "$BI_DIR/gen.py" small "$w/gen$i/srv/small/layer$i" "$files" "$i" &&
        bi_layer_from_dir "$w" "$i" "$w/gen$i" && rm -rf "$w/gen$i" && bi_compress "$w" "$i"
    } >&2 &
  done
  bi_wait_all >&2 || return 1
  echo 4
}
