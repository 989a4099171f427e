#!/usr/bin/env python3
"""Compares two directory trees the way a container sees them; prints the first difference.

  treecmp.py EXPECTED ACTUAL

Compared for every path below the roots (the roots' own metadata belongs to whoever created
them): names, types, permission bits (setuid/setgid/sticky included), uid and gid, sizes and
sha256 of regular files, symlink targets, device numbers, xattrs (overlay's own and
security.selinux excluded), hardlink groups and mtimes (ns). Exit 0 when equal, 1 at the first
difference, 2 on usage errors.
"""
import hashlib
import os
import stat
import sys

IGNORED_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.", "security.selinux")


def describe(root, rel):
    p = os.path.join(root, rel)
    st = os.lstat(p)
    d = {"type": stat.S_IFMT(st.st_mode), "mode": oct(stat.S_IMODE(st.st_mode)),
         "uid": st.st_uid, "gid": st.st_gid}
    if not stat.S_ISDIR(st.st_mode):
        d["mtime_ns"] = st.st_mtime_ns
    elif rel:
        d["mtime_ns"] = st.st_mtime_ns
    if stat.S_ISREG(st.st_mode):
        d["size"] = st.st_size
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        d["sha256"] = h.hexdigest()
    elif stat.S_ISLNK(st.st_mode):
        d["target"] = os.readlink(p)
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        d["rdev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
    try:
        names = os.listxattr(p, follow_symlinks=False)
    except OSError:
        names = []
    xattrs = {}
    for n in names:
        if n.startswith(IGNORED_XATTR_PREFIXES):
            continue
        xattrs[n] = os.getxattr(p, n, follow_symlinks=False)
    if xattrs:
        d["xattrs"] = xattrs
    return d, (st.st_dev, st.st_ino)


def walk(root):
    """Sorted relative paths (depth-first, names sorted), without following symlinks."""
    out = []
    stack = [""]
    while stack:
        rel = stack.pop()
        out.append(rel)
        p = os.path.join(root, rel) if rel else root
        if os.path.isdir(p) and not os.path.islink(p):
            for n in sorted(os.listdir(p), reverse=True):
                stack.append(os.path.join(rel, n) if rel else n)
    return out


def tree(root):
    entries, inodes = {}, {}
    for rel in walk(root):
        d, key = describe(root, rel)
        if rel == "":
            d = {"type": d["type"]}
        entries[rel] = d
        if not stat.S_ISDIR(d["type"]):
            inodes.setdefault(key, []).append(rel)
    for paths in inodes.values():
        if len(paths) > 1:
            for rel in paths:
                entries[rel]["hardlinks"] = sorted(x for x in paths if x != rel)
    return entries


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    a, b = tree(sys.argv[1]), tree(sys.argv[2])
    for rel in sorted(set(a) | set(b)):
        name = "/" + rel
        if rel not in b:
            print("treecmp: %s: only in %s" % (name, sys.argv[1]))
            return 1
        if rel not in a:
            print("treecmp: %s: only in %s" % (name, sys.argv[2]))
            return 1
        for key in sorted(set(a[rel]) | set(b[rel])):
            if a[rel].get(key) != b[rel].get(key):
                print("treecmp: %s: %s differs: %r (expected) vs %r (actual)"
                      % (name, key, a[rel].get(key), b[rel].get(key)))
                return 1
    print("treecmp: %d paths identical" % len(a))
    return 0


if __name__ == "__main__":
    sys.exit(main())
