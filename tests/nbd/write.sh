#!/bin/bash
# nbdcopy into a writable export (data, and zeros sent as WRITE_ZEROES):
# afterwards `qemu-img compare` finds the image equal to the raw source.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir
requires nbdcopy qemu-img

# A source with data, zero runs and holes.
truncate -s 12M src.raw
dd if=/dev/urandom of=src.raw bs=1M count=2 conv=notrunc status=none
dd if=/dev/urandom of=src.raw bs=4k count=5 seek=1000 conv=notrunc status=none
dd if=/dev/urandom of=src.raw bs=1 count=7777 seek=9999999 conv=notrunc status=none

"$Q" create -q -f qcow img.qcow 12M
# Something to overwrite with zeros: the copy must clear it.
"$Q" io -c 'write -q -P 0xee 5M 2M' img.qcow
start_nbd a -k "$T/a.sock" img.qcow
nbdcopy --flush src.raw "$(uri a)"
wait_exit "$PID"
[ "$RC" = 0 ] || fail "server exited $RC"
qemu-img compare -f raw -F qcow src.raw img.qcow >out ||
    fail "qemu-img compare: $(cat out)"
grep -q "Images are identical" out || fail "compare: $(cat out)"
"$Q" check img.qcow >/dev/null || fail "check after the copy"

# The same into a raw export.
truncate -s 12M img.raw
start_nbd b -f raw -k "$T/b.sock" img.raw
nbdcopy src.raw "$(uri b)"
wait_exit "$PID"
cmp src.raw img.raw || fail "raw export differs"
echo "write: ok"
