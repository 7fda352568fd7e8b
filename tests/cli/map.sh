#!/bin/bash
# qcowkit map: extents through a backing chain, human and JSON.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir

"$Q" create -q -f qcow base.qcow 1M
"$Q" io -c 'write -P 1 0 64k' -c 'write -P 2 256k 4k' base.qcow >/dev/null
"$Q" create -q -f qcow -b base.qcow -F qcow top.qcow
"$Q" io -c 'write -P 3 32k 1k' top.qcow >/dev/null

expect_rc 0 "$Q" map --output=json base.qcow
expect_out '[{ "start": 0, "length": 65536, "depth": 0, "present": true, "zero": false, "data": true, "offset": 8192},
{ "start": 65536, "length": 196608, "depth": 0, "present": false, "zero": true, "data": false},
{ "start": 262144, "length": 4096, "depth": 0, "present": true, "zero": false, "data": true, "offset": 73728},
{ "start": 266240, "length": 782336, "depth": 0, "present": false, "zero": true, "data": false}]'

expect_rc 0 "$Q" map top.qcow
expect_out "Offset          Length          Mapped to       File
0               0x8000          0x2000          base.qcow
0x8000          0x400           0x8400          top.qcow
0x8400          0x7c00          0xa400          base.qcow
0x40000         0x1000          0x12000         base.qcow"

expect_rc 0 "$Q" map --output=json top.qcow
grep -q '"depth": 1, "present": false, "zero": true' out ||
    fail "unallocated extents take the depth of the bottom image"

# Compressed clusters have no offset; human output refuses them.
"$Q" convert -c -O qcow base.qcow comp.qcow
expect_rc 0 "$Q" map --output=json comp.qcow
grep -q '"start": 0, "length": 65536, "depth": 0, "present": true, "zero": false, "data": true}' out ||
    fail "compressed extent"
expect_rc 1 "$Q" map comp.qcow
expect_err "compressed clusters"

# Ranges.
expect_rc 0 "$Q" map --output=json --start-offset=64k --max-length=8k base.qcow
expect_out '[{ "start": 65536, "length": 8192, "depth": 0, "present": false, "zero": true, "data": false}]'

expect_rc 1 "$Q" map missing.qcow
expect_err "^qcowkit: missing.qcow: No such file or directory$"
expect_rc 1 "$Q" map --output=yaml base.qcow
expect_rc 1 "$Q" map -f nope base.qcow
expect_err "^qcowkit: Unknown file format 'nope'$"

if have qemu-img && have qemu-io; then
    qemu-img create -q -f qcow qb.qcow 2M
    qemu-io -c 'write -P 1 0 100k' -c 'write -z 512k 8k' -c 'write -P 4 1M 4k' qb.qcow >/dev/null
    qemu-img create -q -f qcow -b qb.qcow -F qcow qt.qcow 3M
    qemu-io -c 'write -P 0 1536k 4k' -c 'write -P 9 2560k 1k' qt.qcow >/dev/null
    # qemu-img 7.2 exits 1 after compressing an image with zero writes
    # in it, though the output is complete.
    qemu-img convert -c -O qcow qb.qcow qc.qcow || true
    [ -s qc.qcow ] || fail "qemu-img convert -c made nothing"
    truncate -s 1M holes.raw
    dd if=/dev/urandom of=holes.raw bs=4k seek=10 count=2 conv=notrunc 2>/dev/null
    qemu-img create -q -f qcow -b holes.raw -F raw qr.qcow
    for f in qb.qcow qt.qcow qc.qcow holes.raw qr.qcow top.qcow; do
        diff <(qemu-img map --output=json "$f") <("$Q" map --output=json "$f") ||
            fail "map --output=json $f differs from qemu-img"
        if [ "$f" != qc.qcow ]; then
            diff <(qemu-img map "$f") <("$Q" map "$f") ||
                fail "map $f differs from qemu-img"
        fi
    done
fi
echo ok
