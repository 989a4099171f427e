#!/usr/bin/env bash
# A full disk (issue "A full disk, restarts mid-pull and a long soak"). snapimport's root is a small
# filesystem the test makes: a loop-mounted ext4 (mkfs.ext4 -m 0, so root has no reserved blocks
# to spill into), or a size-limited tmpfs with SI_DISK_FULL_FS=tmpfs or when no loop device can be
# set up. A filler file leaves a precise amount of space free. Each case runs on a fresh filesystem
# with a fresh snapimport and containerd (CRI on, snapimport as snapshotter and content store) and
# pulls one image through CRI (`snapimport pull`): three small layers and a BIG_MIB MiB random one.
#
#   import         DISK_LEFT_MIB free when the pulls start. The big random layer does not even
#                  fit as a download: the importer refuses it without fetching it. A second image
#                  (the same base and BIG_MIB MiB of zeros, a few KiB to download) runs out of
#                  space while it unpacks. Both pulls fail with "no space left on device" and the
#                  staging path (the second may name meta.db: an unpack under way can take the
#                  disk to zero, and whatever writes next fails); Prepare answered RESOURCE_EXHAUSTED, not a fallback: the
#                  registry served the random blob never and the zeros blob once (to snapimport),
#                  containerd fetched and applied nothing.
#   content-write  import.enabled = false, so containerd fetches the layers itself, of an image
#                  whose bottom layer is the big random one (containerd applies a layer only once
#                  it is fetched, so no apply of its own competes for the space): the content
#                  Write of the big layer runs out of space; the pull fails with the ingest's path; Write answered RESOURCE_EXHAUSTED; the ingest keeps what was
#                  acknowledged (resumed by the retry) or was aborted by containerd's GC.
#   commit-tx      snapimport pauses (SNAPIMPORT_PAUSE_AT=import.renamed:4) inside the big layer's
#                  commit, after its directory was renamed into snapshots/ and before the SQLite
#                  COMMIT; the test fills the disk completely and lets it go on. The COMMIT fails;
#                  the pull fails naming meta.db; the renamed directory is gone again.
#   startup        after a good pull snapimport is stopped, the disk filled completely and
#                  snapimport started: it exits non-zero at once, naming meta.db and "no space left
#                  on device" (documented choice, docs/operations.md). Freed, it starts and serves.
#
# After each failure, and again after the retry: meta.db passes PRAGMA integrity_check; every blob
# file has its record and its bytes hash to its name (no blob half-made); every ingest has its
# record and holds no more than its total; after a Cleanup, snapshots/ holds exactly the records'
# directories (no snapshot half-made) and staging/ is empty; the daemon answers (Snapshots/List,
# /healthz); the no_space metrics count it. Then the filler is deleted and the same pull succeeds.
#
# SI_DISK_FULL_CASES picks cases (default: all four, in order); ctest runs one case per test.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/import_lib.sh" # also: root (else exit 77), CRI_CLIENT, fail()

CASES=${SI_DISK_FULL_CASES:-import content-write commit-tx startup}
DISK_MIB=${DISK_MIB:-96}
BIG_MIB=${BIG_MIB:-24}
DISK_LEFT_MIB=${DISK_LEFT_MIB:-12}
for c in $CASES; do
  case "$c" in import | content-write | commit-tx | startup) ;; *) si_die "unknown case '$c'" ;; esac
done

si_init_workdir e2e-disk-full
si_require mkfs.ext4 python3 sha256sum
si_step "start a registry on 127.0.0.1" si_start_registry
OCI=$SI_WORK/oci
REF=$SI_REGISTRY/test/disk-full:v1
REF_ZEROS=$SI_REGISTRY/test/disk-full-zeros:v1
si_step "build the three-layer test image" si_build_test_image "$OCI" base
# add_big_layer TAG SOURCE [BASE]: TAG = BASE (default: none) + one layer holding /big.bin, BIG_MIB
# MiB from SOURCE.
add_big_layer() {
  local tag=$1 source=$2 base=${3:-} d=$SI_WORK/biglayer
  mkdir -p "$d"
  head -c "$((BIG_MIB << 20))" "$source" >"$d/big.bin"
  chmod 0644 "$d/big.bin"
  tar -C "$d" --create --file "$SI_WORK/big.tar" --format=posix --numeric-owner --owner=0 --group=0 big.bin
  if [ -n "$base" ]; then umoci tag --image "$OCI:$base" "$tag"; else umoci new --image "$OCI:$tag"; fi
  umoci raw add-layer --image "$OCI:$tag" --history.created_by "big layer from $source" "$SI_WORK/big.tar"
  umoci gc --layout "$OCI"
  rm -rf "$d" "$SI_WORK/big.tar"
}
si_step "image full: base + a ${BIG_MIB} MiB random layer" add_big_layer full /dev/urandom base
si_step "image zeros: base + ${BIG_MIB} MiB of zeros" add_big_layer zeros /dev/zero base
bottom_image() {
  add_big_layer bottom /dev/urandom
  si_imp_add_layer "$OCI" bottom top
}
si_step "image bottom: a ${BIG_MIB} MiB random layer, a small one on top" bottom_image
REF_BOTTOM=$SI_REGISTRY/test/disk-full-bottom:v1
si_step "push $REF" si_push_image "$OCI" full "$REF"
si_step "push $REF_ZEROS" si_push_image "$OCI" zeros "$REF_ZEROS"
si_step "push $REF_BOTTOM" si_push_image "$OCI" bottom "$REF_BOTTOM"
BIG_DIGEST=$(jq -r '.layers[-1].digest' "$(si_image_manifest "$OCI" full)")
BOTTOM_DIGEST=$(jq -r '.layers[0].digest' "$(si_image_manifest "$OCI" bottom)")
ZEROS_DIGEST=$(jq -r '.layers[-1].digest' "$(si_image_manifest "$OCI" zeros)")
si_write_hosts_dir "$SI_REGISTRY"

ROOT=$SI_WORK/snapimport/root # si_start_snapimport's --root; the small filesystem is mounted here
FILLER=$ROOT/filler
RESUME=$SI_WORK/resume-commit
ENDPOINT=
SNAP_LOG_START=0
CTRD_LOG_START=0

# --- the small filesystem -------------------------------------------------------------------------

unmount_disk() {
  mountpoint -q "$ROOT" 2>/dev/null || return 0
  umount "$ROOT" 2>/dev/null || umount -l "$ROOT"
}

# make_disk: a fresh DISK_MIB filesystem mounted at $ROOT (ext4 on a loop device, else tmpfs).
make_disk() {
  unmount_disk
  rm -rf "$SI_WORK/snapimport" "$SI_WORK/disk.img"
  mkdir -p "$ROOT"
  if [ "${SI_DISK_FULL_FS:-ext4}" = ext4 ]; then
    truncate -s "${DISK_MIB}M" "$SI_WORK/disk.img"
    mkfs.ext4 -q -F -m 0 "$SI_WORK/disk.img"
    if mount -o loop "$SI_WORK/disk.img" "$ROOT" 2>"$SI_WORK/logs/mount.err"; then
      si_log "ext4 of ${DISK_MIB} MiB on a loop device at $ROOT"
      return 0
    fi
    si_warn "cannot loop-mount ext4 ($(cat "$SI_WORK/logs/mount.err")); using a size-limited tmpfs"
    SI_DISK_FULL_FS=tmpfs
  fi
  mount -t tmpfs -o "size=${DISK_MIB}m,mode=0700" snapimport-disk-full "$ROOT"
  si_log "tmpfs of ${DISK_MIB} MiB at $ROOT"
}

free_bytes() { "$SI_PYTHON" -c 'import os, sys; s = os.statvfs(sys.argv[1]); print(s.f_bavail * s.f_frsize)' "$ROOT"; }

# fill LEAVE_BYTES: grows $FILLER until at most LEAVE_BYTES are free (0: until ENOSPC, twice,
# with a sync between, so nothing the filesystem still held back is left over).
fill() {
  "$SI_PYTHON" - "$FILLER" "$1" <<'PY'
import errno, os, sys
path, leave = sys.argv[1], int(sys.argv[2])
def avail():
    s = os.statvfs(os.path.dirname(path))
    return s.f_bavail * s.f_frsize
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
big, small = b"\0" * (1 << 20), b"\0" * 4096
for _ in range(2 if leave == 0 else 1):
    try:
        while avail() - leave >= len(big):
            os.write(fd, big)
        while avail() > leave:
            os.write(fd, small)
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
    os.sync()
os.close(fd)
PY
  si_log "filled $ROOT: $(free_bytes) bytes free (filler $(stat -c %s "$FILLER") bytes)"
}

free_space() {
  rm -f "$FILLER"
  sync
  si_log "deleted the filler: $(free_bytes) bytes free"
}

# --- daemons --------------------------------------------------------------------------------------

stop_all() {
  [ -z "${SI_CONTAINERD_PID:-}" ] || si_stop_pid "$SI_CONTAINERD_PID" containerd
  [ -z "${SI_SNAPIMPORT_PID:-}" ] || si_stop_pid "$SI_SNAPIMPORT_PID" snapimport
  SI_CONTAINERD_PID=
  SI_SNAPIMPORT_PID=
}

lines_of() { if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi; }

# start_case NAME [IMPORT_TOML]: fresh disk, snapimport (IMPORT_TOML added to its [import] table),
# fresh containerd. Layers a failed pull had staged stay for the retry to claim; a grace of one
# second lets the checks' Cleanup remove them, as it would after the default 10m.
start_case() {
  local name=$1
  SI_IMP_EXTRA_TOML=$'[import]\nstaging_grace_period = "1s"\n'${2:-}
  stop_all
  rm -rf "$SI_WORK/containerd" "$RESUME"
  make_disk
  SNAP_LOG_START=$(lines_of "$SI_WORK/logs/snapimport.log")
  CTRD_LOG_START=$(lines_of "$SI_WORK/logs/containerd.log")
  si_imp_start_snapimport
  si_imp_start_cri_containerd
  ENDPOINT=unix://$SI_CONTAINERD_SOCK
  si_log "case $name: snapimport (pid $SI_SNAPIMPORT_PID) on $ROOT, containerd $SI_CONTAINERD_VERSION (pid $SI_CONTAINERD_PID)"
}

snap_log() { tail -n "+$((SNAP_LOG_START + 1))" "$SI_SNAPIMPORT_LOG"; }
ctrd_log() { tail -n "+$((CTRD_LOG_START + 1))" "$SI_CONTAINERD_LOG"; }

restart_snapimport() {
  rm -f "$SI_SNAPIMPORT_SOCK"
  si_imp_start_snapimport
  si_wait_for "containerd to reach snapimport again" 60 si_ctr -n k8s.io snapshots --snapshotter snapimport ls
}

# --- pulls ----------------------------------------------------------------------------------------

# pull_fails OUT WHAT [REF]: the CRI pull must fail, saying "no space left on device" and naming
# WHAT.
pull_fails() {
  local out=$1 what=$2 ref=${3:-$REF} rc=0
  timeout 300 "$SNAPIMPORT_BIN" pull --image-endpoint "$ENDPOINT" --timeout 240 "$ref" >"$out" 2>&1 || rc=$?
  sed 's/^/    pull: /' "$out" >&2
  [ "$rc" -ne 0 ] || si_fail "the pull of $ref succeeded on a full disk" || return 1
  grep -qi "no space left on device" "$out" || si_fail "the pull's error does not say 'no space left on device'" || return 1
  grep -qF "$what" "$out" || si_fail "the pull's error does not name $what"
}

# pull_ok OUT [REF]
pull_ok() {
  local out=$1 ref=${2:-$REF}
  timeout 300 "$SNAPIMPORT_BIN" pull --image-endpoint "$ENDPOINT" --timeout 240 "$ref" >"$out" 2>&1 ||
    { sed 's/^/    pull: /' "$out" >&2; si_fail "the pull of $ref failed after space was freed"; return 1; }
  sed 's/^/    pull: /' "$out" >&2
  grep -q "^1 pulled, 0 failed" "$out" || si_fail "the pull of $ref did not report success"
}

# check_chain [TAG]: the image is complete in containerd: every chain ID of it is a snapshot.
check_chain() {
  local snaps c
  snaps=$(si_ctr -n k8s.io snapshots --snapshotter snapimport ls | awk 'NR > 1 { print $1 }')
  for c in $(si_chain_ids "$OCI" "${1:-full}"); do
    grep -qx "$c" <<<"$snaps" || si_fail "containerd has no snapshot $c of the image" || return 1
  done
}

# --- state checks ---------------------------------------------------------------------------------

# check_disk_state: meta.db integrity, blobs <-> records (and their digests), ingests <-> records,
# snapshot directories <-> records, staging empty. Call after a Cleanup (or with the daemon down).
check_disk_state() {
  "$SI_PYTHON" - "$ROOT" <<'PY'
import hashlib, os, sqlite3, sys
root = sys.argv[1]
db_file = os.path.join(root, "meta.db")
try:
    db = sqlite3.connect("file:%s?mode=ro" % db_file, uri=True, timeout=30)
    db.execute("SELECT 1 FROM sqlite_master").fetchall()
except sqlite3.Error:
    # No daemon holds it open and a failed start left no WAL index: read the file as it is.
    db = sqlite3.connect("file:%s?immutable=1" % db_file, uri=True)
problems = []
ic = [r[0] for r in db.execute("PRAGMA integrity_check")]
if ic != ["ok"]:
    problems.append("PRAGMA integrity_check: %s" % "; ".join(ic))

def listdir(*p):
    d = os.path.join(root, *p)
    return sorted(os.listdir(d)) if os.path.isdir(d) else []

blob_rows = {d.split(":", 1)[1] for (d,) in db.execute("SELECT digest FROM content_blobs")}
blob_files = listdir("content", "blobs", "sha256")
for name in blob_files:
    h = hashlib.sha256()
    with open(os.path.join(root, "content", "blobs", "sha256", name), "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != name:
        problems.append("blob %s is half-made: its bytes hash to %s" % (name, h.hexdigest()))
    if name not in blob_rows:
        problems.append("blob %s has no record" % name)
# A record without its file is no blob (the file is the truth): a Delete on a full disk removes the
# file and may have to leave the record to the next start-up.
stale = sorted(blob_rows - set(blob_files))

ingest_rows = {i: (ref, total) for (i, ref, total) in db.execute("SELECT id, ref, total FROM content_ingests")}
ingests = []
for i in listdir("content", "ingest"):
    data = os.path.join(root, "content", "ingest", i, "data")
    if i not in ingest_rows:
        problems.append("ingest directory %s has no record" % i)
        continue
    ref, total = ingest_rows[i]
    size = os.path.getsize(data) if os.path.exists(data) else -1
    if size < 0:
        problems.append("ingest %s (%s) has no data file" % (i, ref))
    elif total > 0 and size > total:
        problems.append("ingest %s holds %d bytes, more than its total %d" % (ref, size, total))
    ingests.append("%s %d/%d" % (ref, size, total))
for i in sorted(set(ingest_rows) - set(listdir("content", "ingest"))):
    problems.append("ingest record %s (%s) has no directory" % (i, ingest_rows[i][0]))

ids = sorted(str(i) for (i,) in db.execute("SELECT id FROM snapshots"))
dirs = sorted(listdir("snapshots"))
if dirs != ids:
    problems.append("snapshots/ holds %s but the records are %s" % (dirs, ids))
staged = listdir("staging")
if staged:
    problems.append("staging/ is not empty: %s" % staged)

for p in problems:
    print("PROBLEM: " + p, file=sys.stderr)
print("meta.db integrity ok; %d blobs, each with its record and digest%s; %d ingests%s; %d snapshots "
      "= their directories; staging empty" % (len(blob_files),
      (" (%d deleted blobs' records wait for start-up)" % len(stale)) if stale else "", len(ingests),
      (" (" + ", ".join(ingests) + ")") if ingests else "", len(ids)), file=sys.stderr)
sys.exit(1 if problems else 0)
PY
}

daemon_answers() {
  si_backend_list "$SI_SNAPIMPORT_SOCK" >/dev/null || si_fail "snapimport does not answer Snapshots/List" || return 1
  curl -fsS --max-time 10 "http://127.0.0.1:$SI_IMP_METRICS_PORT/healthz" | grep -qx ok ||
    si_fail "snapimport's /healthz does not answer ok"
}

# check_running WHEN: the checks with the daemon up, each after a Cleanup as containerd's GC
# would call it. containerd's GC may still be removing what a failed pull left (a record gone, its
# directory waiting for the next Cleanup), so the checks get a few seconds to agree.
check_running() {
  si_log "state $1:"
  daemon_answers || return 1
  local i
  for i in $(seq 1 20); do
    si_imp_backend_cleanup "$SI_SNAPIMPORT_SOCK" || return 1
    check_disk_state 2>"$SI_WORK/logs/state.out" && { cat "$SI_WORK/logs/state.out" >&2; return 0; }
    sleep 0.5
  done
  cat "$SI_WORK/logs/state.out" >&2
  si_fail "the state on disk is inconsistent (above)"
}

# metric_at_least NAME LABELS MIN
metric_at_least() {
  local v
  v=$(si_imp_metric "$1" "$2")
  [ "$v" -ge "$3" ] || si_fail "metric $1{$2} is $v, want at least $3" || return 1
  si_log "metric $1{$2} = $v"
}

code_count() { si_imp_metric snapimport_grpc_requests_total "code=\"$1\",method=\"$2\""; }

# settle_gc: waits until containerd's GC is done with what a failed pull left (2.x removes its
# snapshots at once; 1.6 keeps them): snapimport's snapshot list unchanged over a second, Cleanup
# run. Space GC frees later is "freed since the failure", and the importer rightly tries a layer
# that failed for lack of space once more then; the case wants one download, so it waits here.
settle_gc() {
  local prev="" cur same=0
  for _ in $(seq 1 40); do
    si_imp_backend_cleanup "$SI_SNAPIMPORT_SOCK" || return 1
    cur=$(si_backend_list "$SI_SNAPIMPORT_SOCK" | sort | md5sum)
    if [ "$cur" = "$prev" ]; then
      same=$((same + 1))
      [ "$same" -ge 2 ] && return 0
    else
      same=0
    fi
    prev=$cur
    sleep 0.5
  done
  si_fail "containerd's GC did not settle within 20 s"
}

# --- the cases ------------------------------------------------------------------------------------

case_import() {
  start_case import
  fill "$((DISK_LEFT_MIB << 20))"
  pull_fails "$SI_WORK/logs/import-pull1.out" "$ROOT/staging" "$REF"
  grep -q "stay for the database" "$SI_WORK/logs/import-pull1.out" ||
    fail "the random layer was not refused before its download"
  settle_gc || fail "containerd's GC did not settle after the first failed pull"
  # The zeros layer unpacks until the disk is full. Whatever writes next fails, so the pull's
  # error may name the staging directory or meta.db (a base layer committing meanwhile).
  pull_fails "$SI_WORK/logs/import-pull2.out" "$ROOT/" "$REF_ZEROS"
  snap_log | grep 'msg="layer import failed"' | grep "layer=$ZEROS_DIGEST" | grep 'reason=no_space' |
    grep -q 'cannot write' || fail "the zeros layer did not run out of space while unpacking"
  metric_at_least snapimport_imports_failed_total 'reason="no_space"' 2
  metric_at_least snapimport_no_space_errors_total 'area="import"' 2
  local prepares fallbacks applied
  prepares=$(code_count RESOURCE_EXHAUSTED /containerd.services.snapshots.v1.Snapshots/Prepare)
  [ "$prepares" -ge 2 ] || fail "$prepares Prepare(s) answered RESOURCE_EXHAUSTED, want 2 (one per pull)"
  fallbacks=$(si_imp_metric snapimport_fallbacks_total 'reason="import_failed"')
  [ "$fallbacks" -eq 0 ] || fail "the failed imports fell back ($fallbacks)"
  [ "$(si_imp_blob_gets "$BIG_DIGEST" || true)" -eq 0 ] || fail "the random layer was downloaded although it could not fit"
  [ "$(si_imp_blob_gets "$ZEROS_DIGEST" || true)" -eq 1 ] || fail "the registry did not serve the zeros layer exactly once"
  [ "$(si_imp_blob_gets "$ZEROS_DIGEST" containerd || true)" -eq 0 ] || fail "containerd fetched the zeros layer itself"
  applied=$(ctrd_log | grep -c 'diff applied' || true)
  [ "$applied" -eq 0 ] || fail "containerd applied $applied layers itself"
  si_log "Prepare answered RESOURCE_EXHAUSTED $prepares times; no fallback; random layer never fetched, zeros layer once, by snapimport"
  check_running "after the failed pulls (disk still full)"
  free_space
  pull_ok "$SI_WORK/logs/import-pull3.out" "$REF"
  check_chain full
  pull_ok "$SI_WORK/logs/import-pull4.out" "$REF_ZEROS"
  check_chain zeros
  # (The base may be imported more than once: containerd's GC removes what a failed pull left.)
  local d n
  for d in "$BIG_DIGEST" "$ZEROS_DIGEST"; do
    n=$(snap_log | grep 'msg="imported layer"' | grep -c "layer=$d" || true)
    [ "$n" -eq 1 ] || fail "snapimport imported big layer $d $n times, want once"
  done
  applied=$(ctrd_log | grep -c 'diff applied' || true)
  [ "$applied" -eq 0 ] || fail "containerd applied $applied layers itself"
  check_running "after the retried pulls"
}

case_content_write() {
  start_case content-write 'enabled = false'
  fill "$((DISK_LEFT_MIB << 20))"
  pull_fails "$SI_WORK/logs/write-pull1.out" "$ROOT/content/ingest/" "$REF_BOTTOM"
  metric_at_least snapimport_no_space_errors_total 'area="content"' 1
  local writes
  writes=$(code_count RESOURCE_EXHAUSTED /containerd.services.content.v1.Content/Write)
  [ "$writes" -ge 1 ] || fail "no content Write answered RESOURCE_EXHAUSTED"
  si_log "content Write answered RESOURCE_EXHAUSTED $writes time(s)"
  check_running "after the failed pull (disk still full)"
  free_space
  pull_ok "$SI_WORK/logs/write-pull2.out" "$REF_BOTTOM"
  check_chain bottom
  local ranged
  ranged=$(grep -F "/blobs/$BOTTOM_DIGEST HTTP/" "$SI_REGISTRY_LOG" | grep -cF '" 206 ' || true)
  si_log "the registry answered $ranged ranged GET(s) of the big layer (more than 0: containerd resumed the ingest; 0: its GC had aborted it)"
  check_running "after the retried pull"
}

# settle_containerd_gc: the failed pull's lease is gone, so containerd's GC removes the base layers
# it had committed, a few hundred ms later. A retry that starts before that finds a parent by Stat
# and has it collected under its Prepare ("parent snapshot ... does not exist": seen once in a
# fresh-clone run on 1.6). That is a race inside containerd, which kubelet's retry would absorb;
# the test waits for the GC instead. Not a check: when nothing is collected within 15 s, it goes on.
settle_containerd_gc() {
  local deadline=$((SECONDS + 15)) left
  while :; do
    left=$(si_ctr -n k8s.io snapshots --snapshotter snapimport ls 2>/dev/null | awk 'NR > 1' | wc -l)
    [ "$left" -eq 0 ] && { si_log "containerd's GC removed the failed pull's snapshots"; return 0; }
    [ "$SECONDS" -ge "$deadline" ] && { si_log "containerd still lists $left snapshot(s) after 15 s; retrying anyway"; return 0; }
    sleep 0.1
  done
}

case_commit_tx() {
  SNAPIMPORT_PAUSE_AT=import.renamed:4 SNAPIMPORT_PAUSE_FILE=$RESUME start_case commit-tx
  local out=$SI_WORK/logs/commit-pull1.out
  timeout 300 "$SNAPIMPORT_BIN" pull --image-endpoint "$ENDPOINT" --timeout 240 "$REF" >"$out" 2>&1 &
  local pull_pid=$!
  paused() { snap_log | grep -q 'msg="paused at fault point" point=import.renamed'; }
  si_wait_for "snapimport to pause inside the big layer's commit" 240 paused
  # The big layer's directory is in snapshots/ already; its record is not committed yet.
  local dirs ids renamed
  dirs=$(find "$ROOT/snapshots" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort)
  ids=$(si_imp_live_ids "$ROOT" | sort)
  renamed=$(comm -23 <(echo "$dirs") <(echo "$ids") | grep -v '^$' || true)
  [ "$(wc -w <<<"$renamed")" -eq 1 ] || fail "paused in the commit, snapshots/ holds '$dirs' and the records are '$ids': want one directory without a record"
  si_log "paused: snapshots/$renamed holds the big layer, not yet recorded"
  fill 0
  touch "$RESUME"
  local rc=0
  wait "$pull_pid" || rc=$?
  sed 's/^/    pull: /' "$out" >&2
  [ "$rc" -ne 0 ] || fail "the pull succeeded although the disk was full at the COMMIT"
  grep -qi "no space left on device" "$out" || fail "the pull's error does not say 'no space left on device'"
  grep -qF "$ROOT/meta.db" "$out" || fail "the pull's error does not name $ROOT/meta.db"
  [ ! -e "$ROOT/snapshots/$renamed" ] || fail "the half-made snapshot snapshots/$renamed is still there after the failed COMMIT"
  metric_at_least snapimport_no_space_errors_total 'area="database"' 1
  [ "$(code_count RESOURCE_EXHAUSTED /containerd.services.snapshots.v1.Snapshots/Prepare)" -ge 1 ] ||
    fail "no Prepare answered RESOURCE_EXHAUSTED"
  check_running "after the failed COMMIT (disk still full)"
  free_space
  settle_containerd_gc
  pull_ok "$SI_WORK/logs/commit-pull2.out"
  check_chain
  check_running "after the retried pull"
}

case_startup() {
  start_case startup
  pull_ok "$SI_WORK/logs/startup-pull1.out"
  si_stop_pid "$SI_SNAPIMPORT_PID" snapimport
  SI_SNAPIMPORT_PID=
  fill 0
  local out=$SI_WORK/logs/startup-full.out rc=0
  timeout 60 "$SNAPIMPORT_BIN" serve --root "$ROOT" --address "$SI_SNAPIMPORT_SOCK" \
    --config "$SI_WORK/snapimport.toml" >"$out" 2>&1 || rc=$?
  sed 's/^/    serve: /' "$out" >&2
  [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "snapimport on a full disk did not exit with an error (status $rc)"
  grep -qi "no space left on device" "$out" || fail "snapimport's start-up error does not say 'no space left on device'"
  grep -qF "$ROOT" "$out" || fail "snapimport's start-up error does not name $ROOT"
  [ ! -S "$SI_SNAPIMPORT_SOCK" ] || ! si_backend_list "$SI_SNAPIMPORT_SOCK" >/dev/null 2>&1 ||
    fail "something serves on $SI_SNAPIMPORT_SOCK after the failed start"
  si_log "snapimport on a full disk exited with status $rc"
  free_space
  si_log "state with the daemon down:"
  check_disk_state
  restart_snapimport
  pull_ok "$SI_WORK/logs/startup-pull2.out"
  check_chain
  check_running "after the restart and pull"
}

for c in $CASES; do
  si_step "case $c" "case_${c//-/_}"
  echo "case $c: ok"
done
stop_all
unmount_disk
si_print_timings
si_log "PASS: disk full ($CASES) on ${SI_DISK_FULL_FS:-ext4}: clear errors, state intact, the same pull succeeds once space is freed"
