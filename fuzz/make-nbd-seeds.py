#!/usr/bin/env python3
"""make-nbd-seeds.py: write the seed corpus of fuzz-nbd (fuzz/corpus/fuzz-nbd/).

Each seed is a mode byte (see fuzz/fuzz-nbd.c) and what a client sends:
valid handshakes (NBD_OPT_GO with structured replies and base:allocation,
NBD_OPT_EXPORT_NAME, NBD_OPT_LIST/INFO/ABORT...) followed by requests of
every kind, plus a few malformed ones."""
import os
import struct
import sys

IHAVEOPT = 0x49484156454F5054
REQ = 0x25609513
OPT = dict(EXPORT_NAME=1, ABORT=2, LIST=3, STARTTLS=5, INFO=6, GO=7,
           STRUCTURED=8, LIST_META=9, SET_META=10)
CMD = dict(READ=0, WRITE=1, DISC=2, FLUSH=3, TRIM=4, CACHE=5, ZERO=6, BS=7)
FUA, NO_HOLE, DF, REQ_ONE = 1, 2, 4, 8


def opt(o, data=b""):
    return struct.pack(">QII", IHAVEOPT, OPT.get(o, o), len(data)) + data


def go(name=b"", infos=(3, 1, 2), o="GO"):
    d = struct.pack(">I", len(name)) + name + struct.pack(">H", len(infos))
    d += b"".join(struct.pack(">H", i) for i in infos)
    return opt(o, d)


def meta(o, name=b"", queries=(b"base:allocation",)):
    d = struct.pack(">I", len(name)) + name + struct.pack(">I", len(queries))
    d += b"".join(struct.pack(">I", len(q)) + q for q in queries)
    return opt(o, d)


cookie = [0]


def req(cmd, off=0, length=0, flags=0, data=None):
    cookie[0] += 1
    r = struct.pack(">IHHQQI", REQ, flags, CMD.get(cmd, cmd), cookie[0], off,
                    length)
    if cmd == "WRITE":
        r += data if data is not None else bytes([0x5a]) * length
    return r


MiB = 1 << 20
requests = (req("READ", 0, 4096) + req("READ", 65000, 9000, DF) +
            req("WRITE", 100, 300) + req("WRITE", 4096, 512, FUA) +
            req("ZERO", 8192, 70000) + req("ZERO", 0, 512, NO_HOLE | FUA) +
            req("TRIM", 0, 4096) + req("FLUSH") +
            req("BS", 0, MiB) + req("BS", 65536, 4096, REQ_ONE) +
            req("READ", MiB - 10, 20) + req("WRITE", MiB - 1, 2) +
            req("READ", 0, 33 * MiB) + req("CACHE", 0, 512) +
            req("READ", 0, 512, 0x40) + req("READ", 0, 0))
seeds = {
    "go-structured": bytes([0]) + struct.pack(">I", 3) + opt("STRUCTURED") +
    meta("SET_META") + go() + requests + req("DISC"),
    "export-name-simple": bytes([0]) + struct.pack(">I", 1) +
    opt("EXPORT_NAME") + requests + req("DISC"),
    "go-simple-bs-refused": bytes([0]) + struct.pack(">I", 1) + go() +
    requests + req("DISC"),
    "list-info-abort": bytes([8]) + struct.pack(">I", 1) + opt("LIST") +
    go(o="INFO") + opt("STRUCTURED") + meta("LIST_META", queries=()) +
    meta("LIST_META", queries=(b"base:", b"x-foo:bar")) + opt("STARTTLS") +
    opt(99, b"junk") + go(b"nope") + opt("ABORT"),
    "readonly": bytes([1]) + struct.pack(">I", 3) + opt("STRUCTURED") +
    meta("SET_META") + go() + requests + req("DISC"),
    "named": bytes([4 | 8]) + struct.pack(">I", 1) + go(b"wrong") +
    opt("STRUCTURED") + meta("SET_META", b"disk") + go(b"disk") + requests +
    req("DISC"),
    "raw": bytes([2]) + struct.pack(">I", 1) + opt("STRUCTURED") +
    meta("SET_META") + go() + requests + req("DISC"),
    "bad-lengths": bytes([0]) + struct.pack(">I", 1) +
    opt("GO", b"\xff\xff\xff\xff\0\0") + opt("LIST", b"x") +
    opt("SET_META", b"\0\0\0\0\0\0\0\5ab") + opt("STRUCTURED") +
    go() + req("WRITE", 0, 40 * MiB, data=b"") + req("READ", 0, 512),
    "no-fixed-newstyle": bytes([0]) + struct.pack(">I", 0) +
    opt("EXPORT_NAME") + req("READ", 0, 512) + struct.pack(">I", 0xdeadbeef),
}
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz-nbd")
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, "seed-" + name), "wb") as f:
        f.write(data)
