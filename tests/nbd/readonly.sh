#!/bin/bash
# A read-only export (-r) refuses writes and leaves the image as it was;
# -U serves an image another process holds.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir
requires qemu-io nbdcopy

"$Q" create -q -f qcow img.qcow 2M
"$Q" io -c 'write -q -P 0x5a 0 2M' img.qcow
cp img.qcow before.qcow

start_nbd a -r -t -k "$T/a.sock" img.qcow
A=$PID
# qemu-io opened read-write sees a read-only export and fails.
if qemu-io -f raw "$(uri a)" -c 'write -P 0x11 0 4096' >out 2>&1 &&
    ! grep -Eq "failed|denied|not permitted|read-only|Read-only" out; then
    fail "write to a read-only export: $(cat out)"
fi
# Reading works.
qemu-io -r -f raw "$(uri a)" -c 'read -P 0x5a 0 2M' >out 2>&1
grep -q "read 2097152/2097152" out || fail "read: $(cat out)"
# nbdcopy into it is refused.
head -c 4096 /dev/zero >z.raw
if nbdcopy z.raw "$(uri a)" 2>err; then
    fail "nbdcopy into a read-only export"
fi
stop_nbd "$A"
cmp img.qcow before.qcow || fail "the image changed"

# Writable export while another process holds the image: refused.
start_nbd b -t -k "$T/b.sock" img.qcow
B=$PID
if "$Q" nbd -k "$T/c.sock" img.qcow 2>err; then
    fail "second writer started"
fi
grep -q "in use" err || fail "lock: $(cat err)"
stop_nbd "$B"
# -U needs -r.
if "$Q" nbd -U -k "$T/c.sock" img.qcow 2>err; then
    fail "-U without -r accepted"
fi
grep -q "force-share" err || fail "-U: $(cat err)"
echo "readonly: ok"
