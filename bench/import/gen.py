#!/usr/bin/python3
"""Deterministic content for the import benchmark's images (bench/import/run.sh).

  gen.py list BUDGET_BYTES SRC...    print a tar member list (paths relative to /, one per line,
                                     byte-sorted): the ancestors of every SRC, then every directory
                                     and symlink under the SRCs and their regular files in sorted
                                     order until BUDGET_BYTES of file data is reached.
  gen.py text DIR BYTES SEED         write log- and source-like text files (~1-4 MiB each) into DIR
  gen.py small DIR FILES SEED        write FILES small text files (64 B .. 16 KiB, 100 per
                                     directory) into DIR

Everything depends only on the arguments (and, for `list`, on the files under the SRCs), so a rerun
on the same machine produces byte-identical layers.
"""
import os
import random
import stat
import sys

WORDS = (
    "the of and to in is for on that with as by this be are from at or an it not which all can has "
    "layer image snapshot registry manifest digest overlay content config container runtime kernel "
    "error warning info debug request response status timeout retry connect stream buffer offset "
    "size bytes file directory path mount unpack fetch commit prepare remove parent chain label "
    "namespace socket thread worker queue lock wait signal process memory cache page inode block "
    "int void return struct const static unsigned char uint64_t size_t if else while for break "
).split()


def cmd_list(budget, srcs):
    out = set()
    for s in srcs:
        rel = s.strip("/")
        parts = rel.split("/")
        for i in range(1, len(parts)):
            out.add("/".join(parts[:i]))
    entries = []
    for s in srcs:
        rel = s.strip("/")
        entries.append(rel)
        for root, dirs, files in os.walk("/" + rel):
            dirs.sort()
            r = root[1:]
            for name in dirs:
                entries.append(r + "/" + name)
            for name in sorted(files):
                entries.append(r + "/" + name)
    used = 0
    seen = set()  # (dev, ino): a hard-linked file is stored once in the tar, so count it once
    for e in sorted(set(entries), key=lambda p: p.encode()):
        if "\n" in e or "\\" in e:
            continue
        try:
            st = os.lstat("/" + e)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode):
            out.add(e)
        elif stat.S_ISREG(st.st_mode):
            if (st.st_dev, st.st_ino) in seen:
                out.add(e)
                continue
            if used + st.st_size > budget:
                continue
            used += st.st_size
            seen.add((st.st_dev, st.st_ino))
            out.add(e)
    for e in sorted(out, key=lambda p: p.encode()):
        print(e)
    sys.stderr.write("gen.py list: %d entries, %d file bytes from %s\n" % (len(out), used, " ".join(srcs)))


def text_block(rng, nbytes):
    lines = []
    n = 0
    ts = rng.randrange(1600000000, 1700000000)
    while n < nbytes:
        kind = rng.random()
        if kind < 0.6:
            ts += rng.randrange(0, 5000)
            line = "%d.%03d level=%s msg=\"%s\" id=%08x n=%d" % (
                ts // 1000, ts % 1000, rng.choice(("info", "debug", "warn", "error")),
                " ".join(rng.choice(WORDS) for _ in range(rng.randrange(3, 12))),
                rng.getrandbits(32), rng.randrange(0, 1 << 20))
        elif kind < 0.9:
            line = "    " * rng.randrange(0, 4) + " ".join(rng.choice(WORDS) for _ in range(rng.randrange(2, 14))) + ";"
        else:
            line = "%064x" % rng.getrandbits(256)
        lines.append(line)
        n += len(line) + 1
    return ("\n".join(lines) + "\n").encode()[:nbytes]


def cmd_text(d, total, seed):
    rng = random.Random(seed)
    os.makedirs(d, exist_ok=True)
    written = i = 0
    while written < total:
        size = min(total - written, rng.randrange(1 << 20, 4 << 20))
        sub = os.path.join(d, "part%02d" % (i // 16))
        os.makedirs(sub, exist_ok=True)
        with open(os.path.join(sub, "log-%04d.txt" % i), "wb") as f:
            f.write(text_block(rng, size))
        written += size
        i += 1


def cmd_small(d, count, seed):
    rng = random.Random(seed)
    # A pool of text to slice from keeps generation fast; offsets and sizes vary per file.
    pool = text_block(rng, 1 << 20)
    for i in range(count):
        sub = os.path.join(d, "d%03d" % (i // 10000), "s%03d" % ((i // 100) % 100))
        if i % 100 == 0:
            os.makedirs(sub, exist_ok=True)
        size = min(16384, max(64, int(rng.lognormvariate(7.3, 1.0))))  # median ~1.5 KiB
        off = rng.randrange(0, len(pool) - size)
        with open(os.path.join(sub, "f%05d.txt" % i), "wb") as f:
            f.write(pool[off:off + size])


def main(argv):
    if len(argv) >= 3 and argv[1] == "list":
        cmd_list(int(argv[2]), argv[3:])
    elif len(argv) == 5 and argv[1] == "text":
        cmd_text(argv[2], int(argv[3]), int(argv[4]))
    elif len(argv) == 5 and argv[1] == "small":
        cmd_small(argv[2], int(argv[3]), int(argv[4]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
