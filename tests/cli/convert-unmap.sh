#!/bin/bash
# convert -n into an existing, fully allocated target (issue 12): its
# zero ranges become holes, as qemu-img leaves them.  A raw target ends
# with the bytes of qemu-img's and no more allocated blocks (st_blocks)
# than qemu-img leaves; a qcow target reads zeros there and gives the
# clusters' space back (qemu-img's qcow driver cannot).
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir
requires qemu-img qemu-io

blocks() { stat -c %b "$1"; }
SIZE=64M

# A source with little data: runs, a zero cluster QEMU wrote, a tail.
qemu-img create -q -f qcow src.qcow $SIZE
qemu-io -c 'write -q -P 5 1M 64k' -c 'write -q -P 6 30M 4k' \
    -c 'write -q -z 50M 64k' -c 'write -q -P 7 63M 3000' src.qcow

# ------------------------------------------------------- raw targets
truncate -s $SIZE q.raw
qemu-io -f raw -c "write -q -P 0xaa 0 $SIZE" q.raw
cp q.raw k.raw
full=$(blocks k.raw)
qemu-img convert -n -O raw src.qcow q.raw
"$Q" convert -n -O raw src.qcow k.raw
cmp q.raw k.raw || fail "convert -n: other bytes than qemu-img's"
note "raw target: st_blocks $full before, qemu-img $(blocks q.raw), qcowkit $(blocks k.raw)"
[ "$(blocks k.raw)" -le "$(blocks q.raw)" ] ||
    fail "convert -n left $(blocks k.raw) blocks, qemu-img $(blocks q.raw)"
[ "$(blocks k.raw)" -lt $((full / 100)) ] ||
    fail "convert -n left the raw target allocated: $(blocks k.raw) of $full"

# -S 0 keeps the target allocated in qemu-img; the bytes stay equal.
cp k.raw k0.raw
qemu-io -f raw -c "write -q -P 0xaa 0 $SIZE" k0.raw
"$Q" convert -n -S 0 -O raw src.qcow k0.raw
cmp q.raw k0.raw || fail "convert -n -S 0: other bytes"
[ "$(blocks k0.raw)" -ge $((full * 9 / 10)) ] ||
    fail "convert -n -S 0 gave space back: $(blocks k0.raw) of $full"

# ------------------------------------------------------ qcow targets
"$Q" create -q -f qcow t.qcow 32M
"$Q" io -c 'write -q -P 0xaa 0 32M' t.qcow
qemu-img create -q -f qcow s32.qcow 32M
qemu-io -c 'write -q -P 5 1M 64k' -c 'write -q -z 2M 64k' \
    -c 'write -q -P 7 31M 3000' s32.qcow
full=$(blocks t.qcow)
"$Q" convert -n -O qcow s32.qcow t.qcow
"$Q" compare s32.qcow t.qcow >out || fail "compare after convert -n: $(cat out)"
qemu-img compare -f qcow -F qcow s32.qcow t.qcow >out ||
    fail "qemu-img compare: $(cat out)"
"$Q" check t.qcow >out 2>&1 || fail "check after convert -n: $(cat out)"
note "qcow target: st_blocks $full before, $(blocks t.qcow) after"
[ "$(blocks t.qcow)" -lt $((full / 10)) ] ||
    fail "convert -n left the qcow target allocated: $(blocks t.qcow) of $full"
echo ok
