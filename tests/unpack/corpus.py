#!/usr/bin/env python3
"""Malicious-layer corpus for `snapimport unpack` (registry-and-security.md §5 rows 1-8).

The layers are crafted at test time, deterministically, so the repository holds no binary blobs
and the absolute path of the sentinel tree can be baked into them.

  corpus.py generate OUTDIR [--outside DIR]   write the layers (also the fuzzer's seed corpus)
  corpus.py run SNAPIMPORT_BIN                generate, unpack each into a fresh root beside a
                                              sentinel tree, and check the outcome

Each case declares its expected outcome: "refuse" (exit 1 with a clear error, root left empty)
or "contain" (exit 0, everything inside the root). Either way the sentinel tree outside the root
must stay byte-for-byte and metadata-for-metadata untouched.
"""
import gzip
import hashlib
import io
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile

MTIME = 1700000000
# Limits the runner passes, so bombs are detected in well under a second.
RUN_LIMITS = ["--max-bytes", str(256 << 20), "--max-entries", "50000"]


class Tar:
    """A tar stream built entry by entry; tarfile writes most hostile shapes on request."""

    def __init__(self, fmt=tarfile.PAX_FORMAT):
        self.buf = io.BytesIO()
        self.tf = tarfile.open(fileobj=self.buf, mode="w", format=fmt)

    def _info(self, name, type_, **kw):
        ti = tarfile.TarInfo(name)
        ti.type = type_
        ti.mtime = kw.pop("mtime", MTIME)
        ti.mode = kw.pop("mode", 0o755 if type_ in (tarfile.DIRTYPE, tarfile.SYMTYPE) else 0o644)
        for k, v in kw.items():
            setattr(ti, k, v)
        return ti

    def file(self, name, data=b"", **kw):
        ti = self._info(name, tarfile.REGTYPE, **kw)
        ti.size = len(data)
        self.tf.addfile(ti, io.BytesIO(data))
        return self

    def dir(self, name, **kw):
        self.tf.addfile(self._info(name, tarfile.DIRTYPE, **kw))
        return self

    def symlink(self, name, target, **kw):
        self.tf.addfile(self._info(name, tarfile.SYMTYPE, linkname=target, **kw))
        return self

    def hardlink(self, name, target, data=None, **kw):
        ti = self._info(name, tarfile.LNKTYPE, linkname=target, **kw)
        if data is not None:
            ti.size = len(data)
            self.tf.addfile(ti, io.BytesIO(data))
        else:
            self.tf.addfile(ti)
        return self

    def dev(self, name, type_, major, minor, **kw):
        self.tf.addfile(self._info(name, type_, devmajor=major, devminor=minor, **kw))
        return self

    def raw(self, data):
        self.tf.fileobj.write(data)
        self.tf.offset += len(data)
        return self

    def bytes(self):
        self.tf.close()
        return self.buf.getvalue()


def raw_header(name, typeflag, size, linkname=b"", uid=0, gid=0, mode=0o644, major=0, minor=0):
    """A ustar header with fields written verbatim (tarfile refuses out-of-range values)."""
    def octal(v, width):
        s = b"%0*o" % (width - 1, v)
        return s[-(width - 1):] + b"\0"
    h = bytearray(512)
    h[0:len(name)] = name
    h[100:108] = octal(mode, 8)
    h[108:116] = octal(uid, 8)
    h[116:124] = octal(gid, 8)
    h[124:136] = octal(size, 12)
    h[136:148] = octal(MTIME, 12)
    h[156:157] = typeflag
    h[157:157 + len(linkname)] = linkname
    h[257:265] = b"ustar\x0000"
    h[329:337] = octal(major, 8)
    h[337:345] = octal(minor, 8)
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def pad(data):
    return data + b"\0" * (-len(data) % 512)


def pax_record(key, value):
    body = b" %s=%s\n" % (key, value)
    n = len(body) + 1
    while len(str(n)) + len(body) != n:
        n += 1
    return str(n).encode() + body


def gz(data, level=6):
    return gzip.compress(data, compresslevel=level, mtime=0)


def zstd(data):
    return subprocess.run(["zstd", "-q", "-c", "-3"], input=data, check=True,
                          stdout=subprocess.PIPE).stdout


def cases(outside, workdir):
    """(name, §5 row, bytes, media type, expect, extra CLI args)."""
    o = outside.rstrip("/")
    rel_up = "../" * 12 + o.lstrip("/")
    out = []

    def add(name, row, data, expect, media="tar", args=()):
        out.append((name, row, data, media, expect, list(args)))

    # Row 1: "../" and absolute names are cleaned as if rooted at "/" and land inside.
    add("dotdot-name", 1, Tar().file("../../../../../../" + o.lstrip("/") + "/sentinel", b"pwned").bytes(), "contain")
    add("absolute-name", 1, Tar().file(o + "/sentinel", b"pwned").file(o + "/new", b"x").bytes(), "contain")
    add("dotdot-mkdir", 1, Tar().dir("a/../../escape").file("a/../../escape/f", b"x").bytes(), "contain")
    add("dotdot-only-names", 1, Tar().dir("..").dir("../..").file("./../", b"").bytes(), "contain")

    # Row 2: symlink planted, then written through.
    add("symlink-abs-then-write", 2, Tar().symlink("evil", o).file("evil/sentinel", b"pwned").file("evil/new", b"x").bytes(), "contain")
    add("symlink-rel-then-write", 2, Tar().symlink("evil", rel_up).file("evil/sentinel", b"pwned").bytes(), "contain")
    add("symlink-chain-parents", 2, Tar().symlink("a", "b/c").dir("b").symlink("b/c", "../d").symlink("d", "/e").symlink("e", rel_up)
        .file("a/sentinel", b"pwned").file("a/dir/file", b"pwned").bytes(), "contain")
    add("symlink-root-dot", 2, Tar().symlink(".", o).symlink("./", o).file("sentinel", b"pwned").bytes(), "contain")
    add("symlink-then-dir-then-file", 2, Tar().symlink("usr", "/").dir("usr/" + o.lstrip("/")).file("usr/" + o.lstrip("/") + "/sentinel", b"pwned").bytes(), "contain")
    add("symlink-loop", 2, Tar().symlink("l1", "l2").symlink("l2", "l1").file("l1/x", b"x").bytes(), "refuse")

    # Row 3: metadata through symlinks, including the deferred directory-times pass.
    add("chmod-through-symlink", 3, Tar().symlink("d", o + "/dir").dir("d", mode=0o777, uid=1234, gid=1234).bytes(), "contain")
    add("chown-file-through-symlink", 3, Tar().symlink("s", o + "/sentinel").file("s", b"replaced", mode=0o4777, uid=4321).bytes(), "contain")
    add("utimes-deferred-dir-then-symlink", 3, Tar().dir("d", mtime=0, mode=0o700).file("d/f", b"").symlink("d", o + "/dir").bytes(), "contain")
    add("xattr-through-symlink", 3, Tar().symlink("s", o + "/sentinel")
        .file("s", b"", pax_headers={"SCHILY.xattr.user.pwned": "1"}).bytes(), "contain")
    add("mkdir-through-parent-symlink", 3, Tar().symlink("p", o).dir("p/dir", mode=0o777).bytes(), "contain")

    # Row 4: hardlinks must stay inside this layer; link payloads are ignored.
    add("hardlink-dotdot", 4, Tar().hardlink("pw", "../../../../" + o.lstrip("/") + "/sentinel").bytes(), "refuse")
    add("hardlink-absolute", 4, Tar().hardlink("pw", o + "/sentinel").bytes(), "refuse")
    add("hardlink-through-symlink", 4, Tar().symlink("s", o).hardlink("pw", "s/sentinel").bytes(), "refuse")
    add("hardlink-to-symlink", 4, Tar().symlink("s", o + "/sentinel").hardlink("l", "s").file("l", b"replaced").bytes(), "contain")
    # libarchive ignores the size of ustar link entries, so the payload reads as a damaged header.
    add("hardlink-with-payload-ustar", 4, Tar(tarfile.USTAR_FORMAT).file("f", b"original").hardlink("l", "f", data=b"PAYLOAD").bytes(), "refuse")
    # In PAX archives the size is obeyed; the payload is skipped, never written to the target.
    add("hardlink-with-payload-pax", 4, Tar().file("f", b"original", pax_headers={"comment": "pax"})
        .hardlink("l", "f", data=b"PAYLOAD", pax_headers={"comment": "pax"}).bytes(), "contain")
    add("hardlink-to-directory", 4, Tar().dir("d").hardlink("l", "d").bytes(), "refuse")

    # Row 5: whiteouts whose names escape.
    add("whiteout-dotdot", 5, Tar().dir("a").file("a/.wh..", b"").bytes(), "refuse")
    add("whiteout-dot", 5, Tar().file(".wh..", b"").bytes(), "refuse")
    add("whiteout-empty", 5, Tar().file("a/.wh.", b"").bytes(), "refuse")
    add("whiteout-via-dotdot-path", 5, Tar().file("a/../../../.wh." + os.path.basename(o), b"").bytes(), "contain")
    add("whiteout-as-directory", 5, Tar().file(".wh.x/../../" + o.lstrip("/") + "/sentinel", b"").file(".wh.d/f", b"").bytes(), "refuse")
    add("opaque-via-dotdot", 5, Tar().file("../../.wh..wh..opq", b"").bytes(), "contain")

    # Row 6: device nodes (kept inside when allowed; refused by policy).
    devs = Tar().dev("sda", tarfile.BLKTYPE, 8, 0).dev("mem", tarfile.CHRTYPE, 1, 1).file("suid", b"", mode=0o6755).bytes()
    add("device-nodes", 6, devs, "contain")
    add("device-nodes-refused-by-policy", 6, devs, "refuse", args=["--no-devices"])

    # Row 7: hostile ids and device numbers (written raw: tarfile range-checks them).
    add("uid-max-ustar-field", 7, pad(raw_header(b"f", b"0", 0, uid=0o7777777)) + b"\0" * 1024, "contain")
    pax = pax_record(b"uid", b"4294967295") + pax_record(b"gid", b"0")
    add("uid-2^32-1-pax", 7, pad(raw_header(b"PaxHeaders/f", b"x", len(pax))) + pad(pax) + raw_header(b"f", b"0", 0) + b"\0" * 1024, "refuse")
    pax = pax_record(b"gid", b"4294967296")
    add("gid-wraps-to-0-pax", 7, pad(raw_header(b"PaxHeaders/f", b"x", len(pax))) + pad(pax) + raw_header(b"f", b"0", 0) + b"\0" * 1024, "refuse")
    pax = pax_record(b"uid", b"-1")
    add("uid-negative-pax", 7, pad(raw_header(b"PaxHeaders/f", b"x", len(pax))) + pad(pax) + raw_header(b"f", b"0", 0) + b"\0" * 1024, "refuse")
    add("device-major-huge", 7, raw_header(b"d", b"3", 0, major=0o7777777, minor=1) + b"\0" * 1024, "refuse")

    # Row 8: bombs and resource exhaustion.
    pax = pax_record(b"SCHILY.xattr.user.bomb", b"A" * (2 << 20))
    add("pax-header-bomb", 8, pad(raw_header(b"PaxHeaders/f", b"x", len(pax))) + pad(pax) + raw_header(b"f", b"0", 0) + b"\0" * 1024, "refuse")
    longname = b"n/" * (600 << 10)
    add("gnu-longname-bomb", 8, pad(raw_header(b"././@LongLink", b"L", len(longname))) + pad(longname) + raw_header(b"f", b"0", 0) + b"\0" * 1024, "refuse")
    add("path-too-long", 8, Tar().file("d/" * 2100 + "f", b"").bytes(), "refuse")
    add("deep-nesting", 8, Tar().file("a/" * 2000 + "f", b"deep").bytes(), "contain")
    member = gz(b"\0" * (64 << 20), 9)
    add("gzip-bomb-multimember", 8, member * 8, "refuse", media="gzip")
    add("gzip-bomb-file", 8, gz(Tar().file("big", b"\0" * (300 << 20)).bytes(), 1), "refuse", media="gzip")
    if shutil.which("zstd"):
        add("zstd-bomb", 8, zstd(b"\0" * (300 << 20)), "refuse", media="zstd")
    entries = Tar(tarfile.USTAR_FORMAT)
    for i in range(50001):
        entries.file("e%d" % i)
    add("entry-count-bomb", 8, gz(entries.bytes(), 1), "refuse", media="gzip")
    sparse = sparse_layers(workdir)
    for n, data in sparse:
        add(n, 8, data, "refuse")
    add("duplicate-entries", 8, Tar().file("x", b"1").dir("x").file("x/y", b"").file("x", b"2").file("x", b"3").dir("x").bytes(), "contain")
    add("below-dir-replaced-by-symlink", 8, Tar().dir("d").file("d/a", b"a").symlink("d", o).file("d/sentinel", b"pwned").file("d/dir/file", b"pwned").bytes(), "contain")
    add("trusted-xattrs-dropped", 8, Tar().dir("d", pax_headers={"SCHILY.xattr.trusted.overlay.opaque": "y", "SCHILY.xattr.trusted.overlay.redirect": "/etc",
        "SCHILY.xattr.user.overlay.metacopy": "", "SCHILY.xattr.security.selinux": "x"}).bytes(), "contain")
    add("truncated-tar", 8, Tar().file("f", b"x" * 10000).bytes()[:3000], "refuse")
    add("not-a-tar", 8, b"\x7fELF" + b"\x01" * 2000, "refuse")
    return out


def sparse_layers(workdir):
    """GNU tar sparse files claiming 1 TiB: old GNU format and PAX 1.0 format."""
    src = os.path.join(workdir, "sparse-src")
    os.makedirs(src, exist_ok=True)
    big = os.path.join(src, "big")
    with open(big, "wb") as f:
        f.truncate(1 << 40)
        f.seek(1 << 30)
        f.write(b"data")
    out = []
    for fmt in ("gnu", "pax"):
        r = subprocess.run(["tar", "-S", "--format=" + fmt, "-C", src, "-cf", "-", "big"],
                           check=True, stdout=subprocess.PIPE)
        out.append(("sparse-bomb-" + fmt, r.stdout))
    return out


MEDIA = {"tar": "application/vnd.oci.image.layer.v1.tar",
         "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
         "zstd": "application/vnd.oci.image.layer.v1.tar+zstd"}


def snapshot(tree):
    """Everything observable about a tree: names, types, modes, owners, times, contents, xattrs."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(tree):
        for n in [""] + dirnames + filenames:
            p = os.path.join(dirpath, n) if n else dirpath
            st = os.lstat(p)
            item = (stat.S_IFMT(st.st_mode), st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_nlink)
            if stat.S_ISREG(st.st_mode):
                item += (hashlib.sha256(open(p, "rb").read()).hexdigest(),)
            elif stat.S_ISLNK(st.st_mode):
                item += (os.readlink(p),)
            try:
                item += (tuple(sorted((x, os.getxattr(p, x, follow_symlinks=False)) for x in os.listxattr(p, follow_symlinks=False))),)
            except OSError:
                pass
            state[os.path.relpath(p, tree)] = item
    return state


def make_sentinel(outside):
    os.makedirs(os.path.join(outside, "dir"))
    with open(os.path.join(outside, "sentinel"), "w") as f:
        f.write("sentinel\n")
    with open(os.path.join(outside, "dir", "file"), "w") as f:
        f.write("untouched\n")
    os.chmod(os.path.join(outside, "dir"), 0o750)
    os.symlink("sentinel", os.path.join(outside, "link"))
    for p in ("sentinel", "dir/file", "dir", ""):
        os.utime(os.path.join(outside, p), (MTIME, MTIME))


def check_contained(root, name):
    """Every inode in the root is a real entry below it; no overlay xattrs from the layer."""
    problems = []
    if name == "hardlink-with-payload-pax":
        with open(os.path.join(root, "f"), "rb") as f:
            if f.read() != b"original":
                problems.append("link payload was written to the target")
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            for x in os.listxattr(p, follow_symlinks=False):
                if x.startswith("trusted.") and x != "trusted.overlay.opaque":
                    problems.append("%s carries %s" % (p, x))
                if x.startswith("user.overlay."):
                    problems.append("%s carries %s" % (p, x))
    return problems


def run(binary):
    failures = []
    with tempfile.TemporaryDirectory(prefix="snapimport-corpus-") as work:
        outside = os.path.join(work, "outside")
        make_sentinel(outside)
        before = snapshot(outside)
        all_cases = cases(outside, work)
        rows = sorted({c[1] for c in all_cases})
        print("corpus: %d layers covering §5 rows %s" % (len(all_cases), rows))
        for name, row, data, media, expect, args in all_cases:
            layer = os.path.join(work, name + ".layer")
            with open(layer, "wb") as f:
                f.write(data)
            root = os.path.join(work, "root-" + name)
            os.mkdir(root)
            cmd = [binary, "unpack", "--no-sync", "--media-type", MEDIA[media]] + RUN_LIMITS + args + [layer, root]
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
            err = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""
            got = "contain" if r.returncode == 0 else "refuse"
            problems = []
            if r.returncode not in (0, 1):
                problems.append("exit code %d (crash?) %s" % (r.returncode, err))
            if got != expect:
                problems.append("expected %s, got %s %s" % (expect, got, err))
            if got == "refuse":
                if "error=" not in err:
                    problems.append("refusal without an error message")
                if os.listdir(root):
                    problems.append("refused layer left files behind: %s" % os.listdir(root))
            else:
                problems += check_contained(root, name)
            after = snapshot(outside)
            if after != before:
                diff = [k for k in set(before) | set(after) if before.get(k) != after.get(k)]
                problems.append("SENTINEL CHANGED: %s" % sorted(diff))
                shutil.rmtree(outside)
                make_sentinel(outside)
                before = snapshot(outside)
            subprocess.run(["rm", "-rf", "--one-file-system", root], check=True)
            os.unlink(layer)
            status = "FAIL" if problems else "ok"
            detail = err.split("error=", 1)[1][:140] if got == "refuse" and "error=" in err else ""
            print("%-4s row %d %-42s %-7s %s" % (status, row, name, got, detail))
            for p in problems:
                print("       " + p)
            if problems:
                failures.append(name)
    if failures:
        print("corpus: %d failures: %s" % (len(failures), ", ".join(failures)))
        return 1
    print("corpus: all layers refused or contained; sentinel untouched")
    return 0


def generate(outdir, outside):
    os.makedirs(outdir, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        for name, row, data, media, expect, args in cases(outside, work):
            with open(os.path.join(outdir, "%s.%s" % (name, media)), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    sys.setrecursionlimit(100000)  # os.walk over the deep-nesting layer
    if len(sys.argv) >= 3 and sys.argv[1] == "run":
        if os.geteuid() != 0:
            print("corpus: needs root (mknod, chown, trusted.* xattrs), skipping")
            sys.exit(77)
        sys.exit(run(sys.argv[2]))
    if len(sys.argv) >= 3 and sys.argv[1] == "generate":
        outside = sys.argv[4] if len(sys.argv) >= 5 and sys.argv[3] == "--outside" else "/tmp/outside"
        generate(sys.argv[2], outside)
        sys.exit(0)
    print(__doc__)
    sys.exit(2)
