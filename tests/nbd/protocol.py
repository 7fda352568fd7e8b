#!/usr/bin/env python3
"""protocol.py SOCKET_RW SOCKET_RO: qcowkit nbd at the byte level.

A minimal client (no libnbd) checks error replies (EINVAL, ENOSPC, EPERM,
EOVERFLOW), structured and simple replies, block status with REQ_ONE, and
that malformed or hostile clients are dropped without hurting the server:
each case ends with a fresh, well-behaved connection still being served.
Both servers run with -t and -e 0."""
import os
import socket
import struct
import sys

IHAVEOPT = 0x49484156454F5054
REP_MAGIC = 0x3e889045565a9
EPERM, EINVAL, ENOSPC, EOVERFLOW = 1, 22, 28, 75
MiB = 1 << 20


class Client:
    def __init__(self, path, fixed=True):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(20)
        self.s.connect(path)
        self.cookie = 0
        magic, opt, hflags = struct.unpack(">QQH", self.recv(18))
        assert magic == 0x4e42444d41474943 and opt == IHAVEOPT, (magic, opt)
        assert hflags == 3, hflags
        self.structured = False

    def recv(self, n):
        buf = b""
        while len(buf) < n:
            b = self.s.recv(n - len(buf))
            if not b:
                raise EOFError("server closed after %d of %d bytes" % (len(buf), n))
            buf += b
        return buf

    def closed(self):
        """Has the server hung up?"""
        try:
            return self.s.recv(1) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True

    def send(self, b):
        self.s.sendall(b)

    def opt(self, o, data=b""):
        self.send(struct.pack(">QII", IHAVEOPT, o, len(data)) + data)

    def reply(self):
        magic, o, typ, n = struct.unpack(">QIII", self.recv(20))
        assert magic == REP_MAGIC, hex(magic)
        return o, typ, self.recv(n)

    def go(self, name=b"", structured=True, meta=True):
        self.send(struct.pack(">I", 1))
        if structured:
            self.opt(8)
            assert self.reply()[1] == 1
            self.structured = True
        if meta:
            q = b"base:allocation"
            self.opt(10, struct.pack(">I", len(name)) + name +
                     struct.pack(">II", 1, len(q)) + q)
            o, typ, d = self.reply()
            assert typ == 4 and d[4:] == q, (typ, d)
            self.ctx = struct.unpack(">I", d[:4])[0]
            assert self.reply()[1] == 1
        self.opt(7, struct.pack(">I", len(name)) + name + struct.pack(">H", 0))
        info = {}
        while True:
            o, typ, d = self.reply()
            if typ == 1:
                break
            assert typ == 3, hex(typ)
            info[struct.unpack(">H", d[:2])[0]] = d[2:]
        self.size, self.flags = struct.unpack(">QH", info[0])
        return self

    def request(self, cmd, off=0, length=0, flags=0, data=b"", payload=None):
        self.cookie += 1
        self.send(struct.pack(">IHHQQI", 0x25609513, flags, cmd, self.cookie,
                              off, length) +
                  (data if payload is None else payload))
        return self.cookie

    def result(self, cookie, read_len=0):
        """(error, data, chunks) of the reply to cookie."""
        magic = struct.unpack(">I", self.recv(4))[0]
        if magic == 0x67446698:
            err, c = struct.unpack(">IQ", self.recv(12))
            assert c == cookie, (c, cookie)
            return err, (self.recv(read_len) if not err else b""), []
        assert magic == 0x668e33ef, hex(magic)
        data, err, chunks = b"", 0, []
        while True:
            flags, typ, c, n = struct.unpack(">HHQI", self.recv(16))
            assert c == cookie, (c, cookie)
            p = self.recv(n)
            chunks.append((typ, p))
            if typ == 1:
                data += p[8:]
            elif typ & 0x8000:
                err = struct.unpack(">I", p[:4])[0]
            if flags & 1:
                return err, data, chunks
            magic = struct.unpack(">I", self.recv(4))[0]
            assert magic == 0x668e33ef

    def do(self, cmd, off=0, length=0, flags=0, data=b"", payload=None):
        return self.result(self.request(cmd, off, length, flags, data, payload),
                           length if cmd == 0 else 0)

    def disc(self):
        self.request(2)
        assert self.closed()


def alive(path):
    c = Client(path).go()
    err, data, _ = c.do(0, 0, 512)
    assert err == 0 and len(data) == 512
    c.disc()


def main():
    rw, ro = sys.argv[1], sys.argv[2]

    # ------------------------------------------------ errors, structured
    c = Client(rw).go()
    assert c.size == 4 * MiB, c.size
    assert c.flags & (1 << 7), "SEND_DF with structured replies"
    assert c.do(1, 4096, 5, data=b"hello")[0] == 0
    err, data, chunks = c.do(0, 4096, 5)
    assert (err, data) == (0, b"hello"), (err, data)
    assert c.do(0, 4 * MiB - 1, 2)[0] == EINVAL        # read past the end
    assert c.do(1, 4 * MiB - 1, 2, data=b"xy")[0] == ENOSPC  # write past it
    assert c.do(6, 4 * MiB, 1)[0] == ENOSPC            # zero past it
    assert c.do(0, 2 ** 64 - 512, 1024)[0] == EINVAL    # offset wraps
    assert c.do(0, 0, 33 * MiB)[0] == EINVAL           # over the max block
    assert c.do(0, 0, 33 * MiB, flags=4)[0] == EOVERFLOW  # ... with DF
    # A write over the maximum: its 33 MiB payload is read and dropped.
    assert c.do(1, 0, 33 * MiB, payload=b"\0" * (33 * MiB))[0] == EINVAL
    assert c.do(99, 0, 0)[0] == EINVAL                 # unknown command
    assert c.do(5, 0, 512)[0] == EINVAL                # CACHE: not offered
    assert c.do(0, 0, 512, flags=0x40)[0] == EINVAL    # unknown flag
    assert c.do(0, 0, 512, flags=8)[0] == EINVAL       # REQ_ONE on a read
    assert c.do(6, 0, 512, flags=16)[0] == EINVAL      # FAST_ZERO: not offered
    assert c.do(3, 1, 0)[0] == EINVAL                  # flush with an offset
    assert c.do(7, 0, 0)[0] == EINVAL                  # empty block status
    err, data, chunks = c.do(0, 0, 0)                  # empty read
    assert err == 0 and data == b"", (err, chunks)
    # Writes with FUA, zeroes, trim (accepted, ignored), flush.
    assert c.do(1, MiB, 3, flags=1, data=b"abc")[0] == 0
    assert c.do(6, MiB + 1, 1, flags=1 | 2)[0] == 0
    assert c.do(0, MiB, 3)[1] == b"a\0c"
    assert c.do(4, 0, 4096, flags=1)[0] == 0
    assert c.do(0, 4096, 5)[1] == b"hello", "trim is a no-op"
    assert c.do(3)[0] == 0
    # Block status: data in the clusters at 4k and 1M, holes elsewhere.
    err, _, chunks = c.do(7, 0, 4 * MiB)
    assert err == 0 and chunks[0][0] == 5, chunks
    p = chunks[0][1]
    ctx, = struct.unpack(">I", p[:4])
    assert ctx == c.ctx
    ext = [struct.unpack(">II", p[i:i + 8]) for i in range(4, len(p), 8)]
    assert sum(e[0] for e in ext) == 4 * MiB, ext
    assert ext[:2] == [(4096, 3), (4096, 0)], ext
    err, _, chunks = c.do(7, 0, 4 * MiB, flags=8)
    assert len(chunks[0][1]) == 12, chunks
    # Many requests in flight; replies may come in any order.
    cookies = {c.request(0, i * 4096, 4096): i for i in range(100)}
    seen = set()
    for _ in range(100):
        magic, flags, typ, cookie, n = struct.unpack(">IHHQI", c.recv(20))
        c.recv(n)
        seen.add(cookie)
    assert seen == set(cookies)
    c.disc()

    # ------------------------------------------------ simple replies
    c = Client(rw).go(structured=False, meta=False)
    assert not c.flags & (1 << 7), "no SEND_DF without structured replies"
    assert c.do(0, 4096, 5) == (0, b"hello", [])
    assert c.do(0, 4 * MiB, 1)[0] == EINVAL
    assert c.do(7, 0, 512)[0] == EINVAL  # block status: not negotiated
    c.disc()

    # NBD_OPT_EXPORT_NAME, with and without the 124 zero bytes.
    for cflags, tail in ((1, 124), (3, 0)):
        c = Client(rw)
        c.send(struct.pack(">I", cflags))
        c.opt(1)
        size, tflags = struct.unpack(">QH", c.recv(10))
        assert size == 4 * MiB and c.recv(tail) == b"\0" * tail
        assert c.do(0, 4096, 5) == (0, b"hello", [])
        c.disc()

    # ------------------------------------------------ read-only export
    c = Client(ro).go()
    assert c.flags & 2, "READ_ONLY"
    assert c.do(1, 0, 3, data=b"abc")[0] == EPERM
    assert c.do(6, 0, 512)[0] == EPERM
    assert c.do(4, 0, 512)[0] == EPERM
    assert c.do(0, 0, 3)[0] == 0
    c.disc()

    # ------------------------------------------------ option errors
    c = Client(rw)
    c.send(struct.pack(">I", 1))
    c.opt(10, struct.pack(">II", 0, 0))     # meta before structured
    assert c.reply()[1] == 0x80000003
    c.opt(3, b"x")                          # LIST with data
    assert c.reply()[1] == 0x80000003
    c.opt(7, struct.pack(">I", 1000) + b"ab")  # name longer than option
    assert c.reply()[1] == 0x80000003
    c.opt(7, struct.pack(">I", 4) + b"nope" + struct.pack(">H", 0))
    assert c.reply()[1] == 0x80000006       # unknown export
    c.opt(5)
    assert c.reply()[1] == 0x80000002       # STARTTLS: policy
    c.opt(4242, b"whatever")
    assert c.reply()[1] == 0x80000001       # unknown option
    c.opt(7, b"\0" * (100 * 1024))          # too big: skipped
    assert c.reply()[1] == 0x80000009
    c.opt(3)                                # LIST
    o, typ, d = c.reply()
    assert typ == 2 and d[:4] == b"\0\0\0\0", (typ, d)
    assert c.reply()[1] == 1
    c.opt(2)                                # ABORT
    assert c.reply()[1] == 1
    assert c.closed()

    # ------------------------------------------------ hostile clients
    hostile = [
        struct.pack(">I", 0x80),                        # unknown client flag
        struct.pack(">I", 1) + struct.pack(">QII", 0x1234, 7, 0),  # bad magic
        struct.pack(">I", 1) + struct.pack(">QII", IHAVEOPT, 7, 0xffffffff),
        struct.pack(">I", 1) + struct.pack(">QII", IHAVEOPT, 1, 100000),
        struct.pack(">I", 0) + struct.pack(">QII", IHAVEOPT, 3, 0),  # non-fixed
        struct.pack(">I", 1) + struct.pack(">QII", IHAVEOPT, 1, 4) + b"nope",
        struct.pack(">I", 1) + struct.pack(">QI", IHAVEOPT, 7),  # cut short
        os.urandom(4096),
    ]
    for h in hostile:
        c = Client(rw)
        try:
            c.send(h)
        except BrokenPipeError:
            pass
        c.s.shutdown(socket.SHUT_WR)
        while not c.closed():
            pass
        alive(rw)
    # In transmission: bad magic; a write cut short; garbage.
    for h in (struct.pack(">IHHQQI", 0x12345678, 0, 0, 1, 0, 512),
              struct.pack(">IHHQQI", 0x25609513, 0, 1, 1, 0, 65536) + b"x" * 100,
              struct.pack(">IHHQQI", 0x25609513, 0, 0, 1, 0, 512)[:13],
              os.urandom(100000)):
        c = Client(rw).go()
        try:
            c.send(h)
            c.s.shutdown(socket.SHUT_WR)
            while not c.closed():
                pass
        except (BrokenPipeError, ConnectionResetError):
            pass
        alive(rw)
    # A client that asks for a lot and never reads: dropped (SIGPIPE-free),
    # the others are served meanwhile.
    c = Client(rw).go()
    for i in range(64):
        c.request(0, 0, 4 * MiB)
    alive(rw)
    c.s.close()
    # Clients that connect and say nothing do not block others (-e 0).
    idle = [socket.socket(socket.AF_UNIX) for _ in range(5)]
    for s in idle:
        s.connect(rw)
    alive(rw)
    for s in idle:
        s.close()
    alive(rw)
    print("protocol.py: ok")


main()
