#!/bin/bash
# nbdcopy from qcowkit nbd: the export copied to a raw file is identical
# to `qcowkit convert -O raw`; over a unix socket and over TCP on
# 127.0.0.1.  Without -t the server exits once its client has gone.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir
requires nbdcopy

"$Q" create -q -f qcow base.qcow 6M
"$Q" io -c 'write -q -P 0x61 0 1M' -c 'write -q -P 0x62 3M 333k' base.qcow
"$Q" create -q -f qcow -b base.qcow -F qcow top.qcow 10M
"$Q" io -c 'write -q -P 0x63 512k 1M' -c 'write -q -P 0x64 9M 4097' \
    -c 'write -q -z 3M 64k' top.qcow
"$Q" convert -O raw top.qcow ref.raw

# Unix socket, not persistent: one client, then the server exits 0.
start_nbd a -r -k "$T/a.sock" top.qcow
A=$PID
nbdcopy "$(uri a)" out.raw
cmp ref.raw out.raw || fail "unix: copy differs from qcowkit convert"
wait_exit "$A"
[ "$RC" = 0 ] || fail "server exited $RC after its client"

# TCP on 127.0.0.1 (a random free port; retried if taken).
for try in 1 2 3 4 5; do
    PORT=$((20000 + RANDOM % 40000))
    rm -f b.pid
    "$Q" nbd --pid-file="$T/b.pid" -r -b 127.0.0.1 -p "$PORT" top.qcow 2>b.err &
    B=$!
    SERVERS+=("$B")
    for i in $(seq 100); do
        [ -s b.pid ] && break
        kill -0 "$B" 2>/dev/null || break
        sleep 0.1
    done
    [ -s b.pid ] && break
    grep -q "Failed to bind" b.err || fail "tcp server: $(cat b.err)"
done
[ -s b.pid ] || fail "no free TCP port found"
rm -f out.raw
nbdcopy "nbd://127.0.0.1:$PORT" out.raw
cmp ref.raw out.raw || fail "tcp: copy differs from qcowkit convert"
wait_exit "$B"
[ "$RC" = 0 ] || fail "tcp server exited $RC"

# A raw image, exported with -f raw, read with many requests in flight.
dd if=/dev/urandom of=r.raw bs=1M count=5 status=none
truncate -s 9M r.raw
start_nbd c -r -f raw -k "$T/c.sock" r.raw
rm -f out.raw
nbdcopy --requests=32 --request-size=65536 "$(uri c)" out.raw
cmp r.raw out.raw || fail "raw export differs"
wait_exit "$PID"
echo "copy: ok"
