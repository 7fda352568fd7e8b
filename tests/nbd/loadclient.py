#!/usr/bin/env python3
"""loadclient.py MODE SOCKET ARGS...: many or misbehaving NBD clients at the
byte level (no libnbd), for the resource tests of qcowkit nbd.

  idle SOCK N READY STOP     N clients through the handshake, then idle;
                             touches READY, closes all once STOP exists
  trickle SOCK EVERY MAX     one byte of handshake every EVERY s; prints
                             the seconds until the server hung up (fails
                             if it has not after MAX s)
  stall SOCK N MAX           N clients that send nothing; prints the
                             seconds until the server had dropped all
  late SOCK DELAY            connect, wait DELAY s, then handshake and read
  midwrite SOCK MIB MAX      one client sends a write of MIB MiB, half its
                             data, and stops; once it has, a second client
                             writes MIB MiB and reads it back; prints the
                             seconds until the server hung up on the first
                             (fails after MAX s) and until the second's
                             write was answered
  flood SOCK CONNS WRITES MIB  each connection sends WRITES writes of MIB
                             MiB (its own region, its own pattern) without
                             reading a reply, then reads every reply and
                             reads the data back
  mixed SOCK CONNS ROUNDS    each connection sends bursts of writes, reads,
                             flushes and block status, 64 in flight, and
                             checks every reply; one more connection hangs
                             up with requests in flight
Exits 0 when every check holds."""
import os
import random
import resource
import socket
import struct
import sys
import threading
import time

IHAVEOPT = 0x49484156454F5054
MiB = 1 << 20
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH, CMD_BLOCK_STATUS = 0, 1, 2, 3, 7


def raise_fd_limit(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 64:
        want = hard if hard != resource.RLIM_INFINITY else n + 64
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class Conn:
    def __init__(self, path, timeout=60):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.cookie = 0

    def recv(self, n):
        parts, got = [], 0
        while got < n:
            b = self.s.recv(min(n - got, 1 << 20))
            if not b:
                raise EOFError("server closed the connection")
            parts.append(b)
            got += len(b)
        return b"".join(parts)

    def opt(self, o, data=b""):
        self.s.sendall(struct.pack(">QII", IHAVEOPT, o, len(data)) + data)

    def opt_reply(self):
        magic, o, typ, n = struct.unpack(">QIII", self.recv(20))
        return typ, self.recv(n)

    def go(self, meta=False):
        """Handshake with structured replies (and base:allocation)."""
        magic, opt, flags = struct.unpack(">QQH", self.recv(18))
        assert opt == IHAVEOPT, hex(opt)
        self.s.sendall(struct.pack(">I", 3))
        self.opt(8)
        assert self.opt_reply()[0] == 1
        if meta:
            q = b"base:allocation"
            self.opt(10, struct.pack(">III", 0, 1, len(q)) + q)
            typ, d = self.opt_reply()
            assert typ == 4, typ
            assert self.opt_reply()[0] == 1
        self.opt(7, struct.pack(">IH", 0, 0))
        while True:
            typ, d = self.opt_reply()
            if typ == 1:
                return self
            assert typ == 3, hex(typ)

    def request(self, cmd, off=0, length=0, data=b""):
        self.cookie += 1
        self.s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, cmd, self.cookie,
                                   off, length))
        if data:
            self.s.sendall(data)
        return self.cookie

    def reply(self):
        """(cookie, error, data) of the next reply: simple (no data, as
        for writes) or structured."""
        data, err = b"", 0
        while True:
            head = self.recv(16)
            if struct.unpack(">I", head[:4])[0] == 0x67446698:
                magic, err, cookie = struct.unpack(">IIQ", head)
                return cookie, err, b""
            magic, flags, typ, cookie, n = struct.unpack(">IHHQI",
                                                         head + self.recv(4))
            assert magic == 0x668e33ef, hex(magic)
            p = self.recv(n)
            if typ == 1:
                data += p[8:]
            elif typ & 0x8000:
                err = struct.unpack(">I", p[:4])[0]
            if flags & 1:
                return cookie, err, data

    def disc(self):
        self.request(CMD_DISC)
        self.s.close()


def hung_up(s):
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def mode_idle(path, n, ready, stop):
    raise_fd_limit(int(n))
    conns = [Conn(path).go() for _ in range(int(n))]
    open(ready, "w").close()
    while not os.path.exists(stop):
        time.sleep(0.1)
    for c in conns:
        c.disc()


def wait_hangup(s, secs):
    """True if the server hangs up within secs (replies are read)."""
    end = time.time() + secs
    while time.time() < end:
        s.settimeout(max(end - time.time(), 0.01))
        try:
            if s.recv(4096) == b"":
                return True
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
    return False


def mode_trickle(path, every, most):
    every, most = float(every), float(most)
    t0 = time.time()
    c = Conn(path)
    c.recv(18)
    # Flags, then options: plenty of bytes, one at a time.
    data = struct.pack(">I", 3) + struct.pack(">QII", IHAVEOPT, 8, 0) * 100
    for b in data:
        try:
            c.s.send(bytes([b]))
        except (ConnectionResetError, BrokenPipeError):
            break
        if wait_hangup(c.s, every):
            break
        if time.time() - t0 > most:
            sys.exit("trickle: still connected after %.1f s" % most)
    print("%.1f" % (time.time() - t0))


def mode_stall(path, n, most):
    raise_fd_limit(int(n))
    t0 = time.time()
    socks = []
    for _ in range(int(n)):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        s.settimeout(float(most))
        socks.append(s)
    for s in socks:
        left = float(most) - (time.time() - t0)
        s.settimeout(max(left, 0.01))
        try:
            while s.recv(4096) != b"":
                pass
        except socket.timeout:
            sys.exit("stall: a client still connected after %s s" % most)
        except ConnectionResetError:
            pass
    print("%.1f" % (time.time() - t0))


def mode_late(path, delay):
    c = Conn(path)
    time.sleep(float(delay))
    c.go()
    c.request(CMD_READ, 0, 512)
    cookie, err, data = c.reply()
    assert err == 0 and len(data) == 512, err
    c.disc()


def mode_midwrite(path, mib, most):
    size, most = int(mib) * MiB, float(most)
    stalled = Conn(path, timeout=most).go()
    t0 = time.time()
    stalled.request(CMD_WRITE, 0, size, b"\x11" * (size // 2))
    result = {}

    def second():
        c = Conn(path, timeout=most).go()
        block = b"\x22" * size
        c.request(CMD_WRITE, size, size, block)
        cookie, err, _ = c.reply()
        result["answered"] = time.time() - t0
        assert err == 0, "write failed: error %d" % err
        c.request(CMD_READ, size, size)
        cookie, err, data = c.reply()
        assert err == 0 and data == block, "data read back differs"
        c.disc()
        result["ok"] = True

    time.sleep(0.5)  # the server has read the stalled write's header
    t = threading.Thread(target=second)
    t.start()
    if not wait_hangup(stalled.s, most):
        sys.exit("midwrite: still connected after %.1f s" % most)
    dropped = time.time() - t0
    t.join()
    if not result.get("ok"):
        sys.exit("midwrite: the second client failed")
    print("%.1f %.1f" % (dropped, result["answered"]))


def run_threads(target, n):
    errors = []

    def wrap(i):
        try:
            target(i)
        except Exception as e:  # reported below, with the connection
            errors.append("connection %d: %r" % (i, e))

    threads = [threading.Thread(target=wrap, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit("\n".join(errors))


def mode_flood(path, conns, writes, mib):
    conns, writes, size = int(conns), int(writes), int(mib) * MiB

    def one(i):
        c = Conn(path, timeout=120).go()
        block = bytes([0x41 + i]) * size
        for _ in range(writes):
            c.request(CMD_WRITE, i * size, size, block)
        cookies = set()
        for _ in range(writes):
            cookie, err, _ = c.reply()
            assert err == 0, "write failed: error %d" % err
            cookies.add(cookie)
        assert cookies == set(range(1, writes + 1)), "replies missing"
        c.request(CMD_READ, i * size, size)
        cookie, err, data = c.reply()
        assert err == 0 and data == block, "data read back differs"
        c.disc()

    run_threads(one, conns)


def mixed_burst(c, rng, base, image):
    """64 requests in flight; check every reply against the model.  The
    server may run them in any order, so writes in flight never overlap
    (one per 64 KiB slot)."""
    want, free_slots = {}, list(range(16))
    rng.shuffle(free_slots)
    for _ in range(64):
        kind = rng.choice("wwrrfb")
        if kind == "w" and free_slots:
            slot = free_slots.pop()
            n = rng.choice([512, 4096, 65536])
            off = slot * 65536 + rng.randrange(0, 65536 - n + 1)
            data = bytes([rng.randrange(256)]) * n
            image[off:off + n] = data
            want[c.request(CMD_WRITE, base + off, n, data)] = "w"
        elif kind in "wr":
            # Past the written region: zeros, whatever runs meanwhile.
            want[c.request(CMD_READ, base + 1 * MiB, 4096)] = "r"
        elif kind == "f":
            want[c.request(CMD_FLUSH)] = "f"
        else:
            want[c.request(CMD_BLOCK_STATUS, base, 1 * MiB)] = "b"
    for _ in range(64):
        cookie, err, data = c.reply()
        kind = want.pop(cookie)
        assert err == 0, "%s failed: error %d" % (kind, err)
        if kind == "r":
            assert data == bytes(4096), "read of an unwritten region"
    assert not want


def mode_mixed(path, conns, rounds):
    conns, rounds = int(conns), int(rounds)

    def one(i):
        rng = random.Random(i)
        c = Conn(path).go(meta=True)
        base = i * 2 * MiB
        image = bytearray(1 * MiB)
        for _ in range(rounds):
            mixed_burst(c, rng, base, image)
        c.request(CMD_READ, base, 1 * MiB)
        cookie, err, data = c.reply()
        assert err == 0 and data == bytes(image), "data read back differs"
        c.disc()

    def rude(_):
        for _ in range(rounds):
            c = Conn(path).go()
            for j in range(32):
                c.request(CMD_READ, 0, 65536)
            c.s.close()  # replies in flight, nobody to read them

    t = threading.Thread(target=lambda: run_threads(rude, 2))
    t.start()
    run_threads(one, conns)
    t.join()


def main():
    modes = {"idle": mode_idle, "trickle": mode_trickle, "stall": mode_stall,
             "late": mode_late, "midwrite": mode_midwrite,
             "flood": mode_flood, "mixed": mode_mixed}
    modes[sys.argv[1]](*sys.argv[2:])


main()
