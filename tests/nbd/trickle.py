#!/usr/bin/env python3
"""trickle.py SOCKET EVERY SECS: one client starts a write as large as the
server's memory budget and sends its data one byte every EVERY seconds;
another client then asks for a 4 KiB read.  Exits 0 if the read is
answered within SECS seconds, 1 if it is still waiting (the trickler
holds the budget that every other client needs)."""
import socket
import struct
import sys
import threading
import time

IHAVEOPT = 0x49484156454F5054
REQUEST_MAGIC = 0x25609513
CMD_READ, CMD_WRITE = 0, 1


class Conn:
    def __init__(self, path, timeout):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)

    def recv(self, n):
        out = b""
        while len(out) < n:
            b = self.s.recv(n - len(out))
            if not b:
                raise EOFError("server closed the connection")
            out += b
        return out

    def go(self):
        """Fixed newstyle handshake, NBD_OPT_GO, simple replies."""
        magic, opt, flags = struct.unpack(">QQH", self.recv(18))
        assert opt == IHAVEOPT, hex(opt)
        self.s.sendall(struct.pack(">I", 1))
        self.s.sendall(struct.pack(">QII", IHAVEOPT, 7, 6) +
                       struct.pack(">IH", 0, 0))
        while True:
            magic, o, typ, n = struct.unpack(">QIII", self.recv(20))
            self.recv(n)
            if typ == 1:
                return self
            assert typ == 3, hex(typ)

    def request(self, cmd, cookie, off, length):
        self.s.sendall(struct.pack(">IHHQQI", REQUEST_MAGIC, 0, cmd, cookie,
                                   off, length))


def main(path, every, secs):
    every, secs = float(every), float(secs)
    hostile = Conn(path, 10).go()
    hostile.request(CMD_WRITE, 1, 0, 1 << 20)
    time.sleep(0.5)
    answered = threading.Event()

    def read_once():
        c = Conn(path, secs + 30).go()
        c.request(CMD_READ, 2, 1 << 20, 4096)
        magic, err, cookie = struct.unpack(">IIQ", c.recv(16))
        answered.set()

    threading.Thread(target=read_once, daemon=True).start()
    start = time.time()
    while time.time() - start < secs and not answered.is_set():
        try:
            hostile.s.sendall(b"\0")
        except OSError:
            break  # the server dropped the trickler: fine
        answered.wait(every)
    if answered.wait(2):
        print("read answered after %.1f s" % (time.time() - start))
        return 0
    print("read still waiting after %.1f s" % (time.time() - start))
    return 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
