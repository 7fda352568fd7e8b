#!/bin/bash
# Reproducers from the second hostile review (attack2).  ATTACK_PART=name
# runs one: rebase-gap.
. "$(dirname "$0")/common.sh"
have python3 || exit 77

part() { [ -z "${ATTACK_PART:-}" ] || [ "$ATTACK_PART" = "$1" ]; }

# 1. A 7-byte deflate stream (512 bytes of 'A', cluster_bits 9) lies in the
#    gap between the end of a 1-byte backing name (48..49) and the L1
#    table, which starts at the next multiple of 8 (56), as QEMU's create
#    places it.  The image checks clean and reads the same in QEMU.  An
#    in-place rebase to a longer name (place_name: "fits before the L1
#    table") writes over the stream: the guest cluster is lost.
if part rebase-gap; then
    cat >gap.py <<'PY'
import struct
class W:
    def __init__(s): s.b = []
    def code(s, v, n): s.b += [(v >> i) & 1 for i in range(n - 1, -1, -1)]
    def extra(s, v, n): s.b += [(v >> i) & 1 for i in range(n)]
    def out(s):
        b = s.b + [0] * (-len(s.b) % 8)
        return bytes(sum(b[i + j] << j for j in range(8))
                     for i in range(0, len(b), 8))
w = W(); w.extra(1, 1); w.extra(1, 2)              # final, fixed Huffman
w.code(0x30 + 0x41, 8)                             # 'A'
w.code(0b11000101, 8); w.code(0, 5)                # 258 x, distance 1
w.code(0b11000100, 8); w.extra(26, 5); w.code(0, 5)  # 253 x, distance 1
w.code(0, 7)                                       # end of block
s = w.out(); assert len(s) == 7
f = bytearray(1024)
f[0:48] = struct.pack('>4sIQIIQBBHIQ', b'QFI\xfb', 1, 48, 1, 0, 32768,
                      9, 6, 0, 0, 56)
f[48:49] = b'b'
f[49:56] = s
f[56:64] = struct.pack('>Q', 512)
f[512:520] = struct.pack('>Q', 1 << 63 | 7 << (63 - 9) | 49)
open('gap.qcow', 'wb').write(f)
PY
    python3 gap.py
    truncate -s 32K b bbbbbbbb
    expect_rc 0 "$Q" check gap.qcow
    expect_rc 0 "$Q" io -c 'read -P 0x41 0 512' gap.qcow
    if have qemu-io; then
        qemu-io -f qcow -c 'read -P 0x41 0 512' gap.qcow >out 2>&1
        grep -q 'Pattern verification failed' out && fail "QEMU disagrees"
    fi
    expect_rc 0 "$Q" rebase -u -b bbbbbbbb -F raw gap.qcow
    rc=0; "$Q" io -c 'read -P 0x41 0 512' gap.qcow >out 2>&1 || rc=$?
    if [ $rc != 0 ] || grep -q 'Pattern verification failed' out; then
        cat out >&2
        fail "rebase -u wrote the new name over a compressed cluster"
    fi
fi
echo ok
