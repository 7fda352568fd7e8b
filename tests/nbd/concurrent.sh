#!/bin/bash
# Two clients at once (-e 2), each writing its own region with many
# requests in flight, each seeing the other's data after a flush (one
# image handle); the server exits when both have gone.  With -e 1 a
# second client waits until the first has left.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir
requires qemu-io
NBDPY=$(nbd_python)
if [ -z "$NBDPY" ]; then
    echo "no python with libnbd (python3-libnbd); skipping" >&2
    exit 77
fi

"$Q" create -q -f qcow img.qcow 8M
start_nbd a -e 2 -k "$T/a.sock" img.qcow
A=$PID
"$NBDPY" - <<PY || fail "libnbd client"
import nbd
u = "$(uri a)"
h1 = nbd.NBD(); h1.connect_uri(u)
h2 = nbd.NBD(); h2.connect_uri(u)   # both connected at once
assert not h1.can_multi_conn()
# 64 writes of 64 KiB in flight on each connection, interleaved.
c1 = [h1.aio_pwrite(bytes([0x10 + i % 7]) * 65536, i * 65536) for i in range(64)]
c2 = [h2.aio_pwrite(bytes([0x80 + i % 5]) * 65536, (4 << 20) + i * 65536) for i in range(64)]
for h, cs in ((h1, c1), (h2, c2)):
    for c in cs:
        while not h.aio_command_completed(c):
            h.poll(-1)
h1.flush(); h2.flush()
for i in range(64):
    assert h2.pread(65536, i * 65536) == bytes([0x10 + i % 7]) * 65536, i
    assert h1.pread(65536, (4 << 20) + i * 65536) == bytes([0x80 + i % 5]) * 65536, i
h1.shutdown(); h2.shutdown()
PY
wait_exit "$A"
[ "$RC" = 0 ] || fail "server exited $RC"
qemu-io -r -f qcow img.qcow -c 'read -P 0x10 0 64k' -c 'read -P 0x80 4M 64k' \
    -c 'read -P 0x12 1M 64k' >out 2>&1 || fail "image: $(cat out)"
grep -q "Pattern verification failed" out && fail "image: $(cat out)"
[ "$(grep -c '^read 65536/65536' out)" = 3 ] || fail "image: $(cat out)"

# -e 1: the second client is only served after the first has gone.
start_nbd b -e 1 -t -k "$T/b.sock" img.qcow
B=$PID
"$NBDPY" - <<PY || fail "libnbd clients with -e 1"
import nbd, threading, time
u = "$(uri b)"
h1 = nbd.NBD(); h1.connect_uri(u)
done = []
def second():
    h2 = nbd.NBD(); h2.connect_uri(u); done.append(h2.pread(512, 0)); h2.shutdown()
t = threading.Thread(target=second); t.start()
time.sleep(1)
assert not done, "second client served while the first is connected"
h1.shutdown()
t.join(10)
assert done and done[0] == bytes([0x10]) * 512, done
PY
stop_nbd "$B"
echo "concurrent: ok"
