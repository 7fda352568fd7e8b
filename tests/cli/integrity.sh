#!/bin/bash
# Image integrity under hostile images and edits: reproducers from two
# hostile reviews of the issue 8 fixes, each of which failed before its
# own fix.  INTEGRITY_PART=name runs one: name-shrink name-grow
# rebase-packed chain raw-truncate rebase-gap.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir
have python3 || exit 77

part() { [ -z "${INTEGRITY_PART:-}" ] || [ "$INTEGRITY_PART" = "$1" ]; }

cat >mk.py <<'PY'
import struct, sys, zlib
def hdr(size, l1off, boff=0, bsize=0):
    return struct.pack('>4sIQIIQBBHIQ', b'QFI\xfb', 1, boff, bsize, 0, size,
                       12, 9, 0, 0, l1off)
def l2(e):
    e = list(e) + [0] * (512 - len(e))
    return b''.join(struct.pack('>Q', x) for x in e)
def comp(off, n):
    return 1 << 63 | n << 51 | off
def deflate(d):
    c = zlib.compressobj(9, zlib.DEFLATED, -12)
    return c.compress(d) + c.flush()
def build(path, size, l1, writes, l1off=48, boff=0, bname=b''):
    buf = bytearray()
    def put(off, b):
        if len(buf) < off + len(b):
            buf.extend(bytes(off + len(b) - len(buf)))
        buf[off:off + len(b)] = b
    put(0, hdr(size, l1off, boff, len(bname)))
    put(l1off, b''.join(struct.pack('>Q', x) for x in l1))
    if bname:
        put(boff, bname)
    for off, b in writes:
        put(off, b)
    open(path, 'wb').write(bytes(buf))
what = sys.argv[1]
if what == 'name':
    # The backing name "bj" is bytes 5..6 of L1[1], which reads 0x626a00:
    # a sound, 512-aligned L2 table placed there.  check finds no error.
    build(sys.argv[2], 4 << 20, [0, 0x626a00], [(0x626a00, l2([]))],
          boff=61, bname=b'bj')
elif what == 'chain':
    # Streams A [0,26) B [22,48) C [44,66) relative: A and C share no byte.
    s = [deflate(bytes([v]) * 4096) for v in (0x11, 0x22, 0x33)]
    A = 8192; B = A + len(s[0]); C = B + len(s[1])
    build(sys.argv[2], 1 << 20, [4096],
          [(4096, l2([comp(A, len(s[0]) + 4), comp(C, len(s[2])),
                      comp(B, len(s[1]) + 4)])),
           (A, s[0]), (B, s[1]), (C, s[2])])
PY
python3 -c "open('bj','wb').write(b'\x5a' * (4 << 20))"

# 1, 2. A backing name lying in L1 bytes: any L1 update (a shrink clears
#    entries, a grow wipes the old table) would rewrite the name.  Such a
#    header is refused at open, so nothing is changed.
if part name-shrink || part name-grow; then
    python3 mk.py name s.qcow
    cp s.qcow s.orig
    expect_rc 1 "$Q" check s.qcow
    expect_err "s.qcow: backing file name at offset 61 overlaps the L1 table at offset 48"
    expect_rc 1 "$Q" resize --shrink s.qcow 2M
    expect_rc 1 "$Q" resize s.qcow 8M
    cmp s.qcow s.orig || fail "a refused header's image was changed"
fi

# 3. rebase -u appends the name at an unaligned end; a compressed write
#    then packs its stream into the name's sector; check calls the
#    image qcowkit wrote corrupt and -r all throws the cluster away.
if part rebase-packed; then
    "$Q" create -f raw b.raw 64K >/dev/null
    "$Q" create -f qcow -b b.raw -F raw o.qcow 64K >/dev/null
    expect_rc 0 "$Q" io -c 'write -P 1 0 512' o.qcow
    expect_rc 0 "$Q" rebase -u -b "$PWD/./././b.raw" -F raw o.qcow
    expect_rc 0 "$Q" io -c 'write -c -P 3 1024 512' o.qcow
    expect_rc 0 "$Q" check o.qcow
    "$Q" check -r all o.qcow >/dev/null 2>&1 || true
    expect_rc 0 "$Q" io -c 'read -P 3 1024 512' o.qcow
    grep -q 'Pattern verification failed' out &&
        fail "check -r all discarded qcowkit's own compressed cluster"
fi

# 4. Compressed streams A~B~C (A and C disjoint), walked A, C, B: only B
#    shares bytes with a kept stream, yet C is blamed and cleared.
if part chain; then
    python3 mk.py chain c.qcow
    "$Q" check -r all c.qcow >/dev/null 2>&1 || true
    expect_rc 0 "$Q" io -c 'read -P 0x11 0 4k' -c 'read -P 0x33 4k 4k' c.qcow
    grep -q 'Pattern verification failed' out &&
        fail "repair cleared a stream that shares no byte with a kept one"
fi

# 5. A probed raw image whose sector 0 reads "QEDx" (writes refused) must
#    not become a QED image by shrink + grow; -f raw allows it.
if part raw-truncate; then
    printf 'QEDx' >r.raw
    truncate -s 1M r.raw
    expect_rc 1 "$Q" resize --shrink r.raw 3
    expect_err "r.raw: refusing to cut a probed raw image to 3 bytes: grown again, sector 0 would look like a QED image"
    [ "$(stat -c %s r.raw)" = 1048576 ] || fail "refused shrink changed r.raw"
    expect_rc 0 "$Q" resize --shrink r.raw 4
    expect_rc 0 "$Q" resize -f raw --shrink r.raw 3
fi

# 6. A 7-byte deflate stream (512 bytes of 'A', cluster_bits 9) lies in the
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
