#!/usr/bin/env python3
"""Regenerate the hand-made seeds of fuzz/corpus/ (needs qemu-img, qemu-io).

    fuzz/make-seeds.py [CORPUS_DIR]

Writes seed-* files into CORPUS_DIR/fuzz-open/ and CORPUS_DIR/fuzz-ops/
(default: fuzz/corpus next to this script).  Inputs found by fuzzing and
merged in later have libFuzzer's hash names and are left alone.

fuzz-open seeds are image files: valid images made by the real qemu-img
and qemu-io (empty, written, compressed by `qemu-img convert -c`, with a
backing name, AES-encrypted), plus hand-made corrupt variants of each
header field and table entry.  fuzz-ops seeds are a mode header followed
by scripts of operations (see the layout at the top of fuzz-ops.c), some
with a qemu-made image embedded.
"""
import os
import random
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, 'corpus')
MAGIC = 0x514649FB
PASSWORD = 'fuzz-password'  # the key both harnesses use
MAX_SEED = 64 << 10


def run(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


def header(size=65536, cluster_bits=12, l2_bits=9, crypt=0, l1=48,
           backing_offset=0, backing_size=0, magic=MAGIC, version=1):
    return struct.pack('>IIQIIQBBHIQ', magic, version, backing_offset,
                       backing_size, 0, size, cluster_bits, l2_bits, 0,
                       crypt, l1)


def write(harness, name, data):
    assert len(data) < MAX_SEED, (name, len(data))
    d = os.path.join(OUT, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, 'seed-' + name), 'wb') as f:
        f.write(data)


def qemu_images(tmp):
    """Valid images from the real tools: name -> bytes."""
    imgs = {}

    def path(n):
        return os.path.join(tmp, n)

    def io(name, *cmds, opts=None):
        args = ['qemu-io']
        if opts:
            args += opts
        else:
            args += ['-f', 'qcow', path(name)]
        for c in cmds:
            args += ['-c', c]
        run(*args)

    run('qemu-img', 'create', '-q', '-f', 'qcow', path('empty'), '64k')
    run('qemu-img', 'create', '-q', '-f', 'qcow', path('odd'), '1000')
    run('qemu-img', 'create', '-q', '-f', 'qcow', path('written'), '64k')
    io('written', 'write -P 0xab 0 4k', 'write -P 0x11 12k 6k',
       'write -P 0x22 60k 4k')
    run('qemu-img', 'create', '-q', '-f', 'qcow', path('unaligned'), '32k')
    io('unaligned', 'write -P 0x33 1000 3000', 'write -P 0x44 9000 100')
    # Past 4 GiB: the L1 table of a 5 GiB image is 5 KiB.
    run('qemu-img', 'create', '-q', '-f', 'qcow', path('large'), '5G')
    io('large', 'write -P 0x55 0 4k', 'write -P 0x66 4294963200 8k',
       'write -P 0x77 5368705024 4k')
    # Compressed clusters, by qemu-img convert -c.
    raw = path('data.raw')
    with open(raw, 'wb') as f:
        f.write(b'qcowkit fuzz seed ' * 1000)  # 18000 bytes
        f.write(b'\0' * (32768 - 18000))
        f.write(random.Random(1).randbytes(4096))  # incompressible
        f.write(bytes(range(256)) * 16 * 7)
    # qemu-img 7.2 exits 1 after a compressed qcow convert that worked, so
    # the result is checked by comparing instead.
    subprocess.run(['qemu-img', 'convert', '-q', '-c', '-f', 'raw', '-O',
                    'qcow', raw, path('compressed')])
    run('qemu-img', 'compare', '-q', '-f', 'raw', '-F', 'qcow', raw,
        path('compressed'))
    # A backing name (512-byte clusters), and one child with data.
    run('qemu-img', 'create', '-q', '-f', 'qcow', '-F', 'qcow', '-b',
        'empty', path('child'))
    run('qemu-img', 'create', '-q', '-f', 'qcow', '-F', 'raw', '-b',
        'data.raw', path('child-written'))
    io('child-written', 'write -P 0x88 512 1024', 'write -P 0x99 40000 3000')
    # The base of the corrupt variants, built by hand to be small (2 KiB):
    # 512-byte clusters, 64-entry L2 tables, a backing name, an L1 table of
    # two entries, one L2 table and two data clusters; qemu-io reads it
    # back (qemu-img has no check for qcow).
    with open(path('small'), 'wb') as f:
        f.write((header(size=65536, cluster_bits=9, l2_bits=6, l1=48,
                        backing_offset=64, backing_size=8) +
                 be64(512) + be64(0) + b'data.raw').ljust(512, b'\0'))
        f.write((be64(1024) + be64(0) + be64(1536)).ljust(512, b'\0'))
        f.write(b'\x12' * 512 + b'\x34' * 512)
    run('qemu-io', '-f', 'qcow', '-r', '-c', 'read -P 0x12 0 512', '-c',
        'read -P 0x34 1024 512', path('small'))
    # After `qemu-img commit` (make_empty cuts the file to the end of the
    # L1 table) a new write puts the L2 table in the L1 table's sector.
    run('qemu-img', 'create', '-q', '-f', 'raw', path('base.raw'), '300k')
    run('qemu-img', 'create', '-q', '-f', 'qcow', '-F', 'raw', '-b',
        'base.raw', path('committed'), '300k')
    io('committed', 'write -P 0x11 0 4k')
    run('qemu-img', 'commit', '-q', '-f', 'qcow', path('committed'))
    io('committed', 'write -P 0x22 8k 4k')
    # AES (crypt_method 1), written through qemu-io with the key.
    sec = 'secret,id=sec0,data=' + PASSWORD
    run('qemu-img', 'create', '-q', '-f', 'qcow', '--object', sec, '-o',
        'encrypt.format=aes,encrypt.key-secret=sec0', path('aes'), '64k')
    io('aes', 'write -P 0x5a 0 3k', 'write -P 0x11 40k 1k',
       opts=['--object', sec, '--image-opts',
             'driver=qcow,file.filename=%s,encrypt.key-secret=sec0' %
             path('aes')])
    for n in ['small', 'committed', 'empty', 'odd', 'written', 'unaligned', 'large', 'compressed',
              'child', 'child-written', 'aes']:
        with open(path(n), 'rb') as f:
            imgs[n] = f.read()
    return imgs


def be64(x):
    return struct.pack('>Q', x)


def corrupt_images(imgs):
    """Hand-made broken images: name -> bytes."""
    out = {}
    w = bytearray(imgs['small'])
    cbits = w[32]
    l1_off = struct.unpack('>Q', w[40:48])[0]
    l2_off = struct.unpack('>Q', w[l1_off:l1_off + 8])[0]
    data_off = struct.unpack('>Q', w[l2_off:l2_off + 8])[0]

    def patched(base, off, data):
        b = bytearray(base)
        b[off:off + len(data)] = data
        return bytes(b)

    def hdr_field(base, off, fmt, value):
        return patched(base, off, struct.pack(fmt, value))

    # Header fields one at a time.
    out['bad-magic'] = hdr_field(w, 0, '>I', 0x514649FA)
    out['qcow2-magic'] = hdr_field(w, 4, '>I', 2)
    out['version-3'] = hdr_field(w, 4, '>I', 3)
    out['version-0'] = hdr_field(w, 4, '>I', 0)
    out['cluster-bits-8'] = w[:32] + bytes([8]) + w[33:]
    out['cluster-bits-17'] = w[:32] + bytes([17]) + w[33:]
    out['cluster-bits-63'] = w[:32] + bytes([63]) + w[33:]
    out['l2-bits-5'] = w[:33] + bytes([5]) + w[34:]
    out['l2-bits-14'] = w[:33] + bytes([14]) + w[34:]
    out['l2-bits-0'] = w[:33] + bytes([0]) + w[34:]
    out['size-0'] = hdr_field(w, 24, '>Q', 0)
    out['size-1'] = hdr_field(w, 24, '>Q', 1)
    out['size-511'] = hdr_field(w, 24, '>Q', 511)
    out['size-max'] = hdr_field(w, 24, '>Q', 2**64 - 1)
    out['size-2e63'] = hdr_field(w, 24, '>Q', 2**63)
    out['size-l1-past-file'] = hdr_field(w, 24, '>Q', 2**40)
    out['size-larger'] = hdr_field(w, 24, '>Q', 65536 * 3)
    out['crypt-2'] = hdr_field(w, 36, '>I', 2)
    out['crypt-1-no-key-data'] = hdr_field(w, 36, '>I', 1)
    out['crypt-max'] = hdr_field(w, 36, '>I', 0xFFFFFFFF)
    out['l1-in-header'] = hdr_field(w, 40, '>Q', 8)
    out['l1-zero'] = hdr_field(w, 40, '>Q', 0)
    out['l1-past-file'] = hdr_field(w, 40, '>Q', len(w))
    out['l1-at-end'] = hdr_field(w, 40, '>Q', len(w) - 8)
    out['l1-huge'] = hdr_field(w, 40, '>Q', 2**64 - 8)
    out['l1-unaligned'] = hdr_field(w, 40, '>Q', 49)
    out['l1-is-l2'] = hdr_field(w, 40, '>Q', l2_off)
    # Backing name fields.
    out['backing-in-header'] = patched(w, 8, struct.pack('>QI', 4, 20))
    out['backing-past-file'] = patched(w, 8, struct.pack('>QI', len(w), 10))
    out['backing-size-max'] = patched(w, 8, struct.pack('>QI', 56,
                                                         0xFFFFFFFF))
    out['backing-size-1024'] = patched(w, 8, struct.pack('>QI', 56, 1024))
    out['backing-size-1023'] = patched(w, 8, struct.pack('>QI', 56, 1023))
    out['backing-offset-wrap'] = patched(w, 8, struct.pack('>QI',
                                                            2**64 - 4, 8))
    out['backing-overlaps-l1'] = patched(w, 8, struct.pack('>QI', 48, 16))
    out['backing-no-nul'] = patched(
        patched(w, 8, struct.pack('>QI', len(w) - 16, 16)), len(w) - 16,
        b'../../etc/passwd')
    # Tables.
    out['l1-entry-past-file'] = patched(w, l1_off, be64(len(w) + 4096))
    out['l1-entry-huge'] = patched(w, l1_off, be64(2**63 - 4096))
    out['l1-entry-unaligned'] = patched(w, l1_off, be64(l2_off + 1))
    out['l1-entry-header'] = patched(w, l1_off, be64(0))
    out['l1-entry-points-l1'] = patched(w, l1_off, be64(0 + 48 - 48))
    out['l2-is-header'] = patched(w, l1_off, be64(16))
    out['l2-entry-past-file'] = patched(w, l2_off, be64(len(w) + 4096))
    out['l2-entry-unaligned'] = patched(w, l2_off, be64(data_off + 7))
    out['l2-entry-header'] = patched(w, l2_off, be64(0 + 1))
    out['l2-entry-is-l2'] = patched(w, l2_off, be64(l2_off))
    out['l2-entry-is-l1'] = patched(w, l2_off, be64(48))
    out['l2-entry-dup'] = patched(w, l2_off + 8 * 3,
                                  w[l2_off:l2_off + 8])
    out['l2-entry-huge'] = patched(w, l2_off, be64(2**62))
    # Compressed entries (cluster_bits 12: size in bits 51..62).
    def comp(offset, size):
        return be64((1 << 63) | (size << (63 - cbits)) | offset)
    out['comp-past-file'] = patched(w, l2_off, comp(len(w) + 100, 100))
    out['comp-size-0'] = patched(w, l2_off, comp(data_off, 0))
    out['comp-size-max'] = patched(w, l2_off, comp(data_off, (1 << cbits) - 1))
    out['comp-garbage'] = patched(w, l2_off, comp(data_off, 200))
    out['comp-in-header'] = patched(w, l2_off, comp(10, 30))
    out['comp-straddles-end'] = patched(w, l2_off, comp(len(w) - 10, 100))
    out['comp-all-ones'] = patched(w, l2_off, be64(2**64 - 1))
    # Truncations.
    out['trunc-47'] = bytes(w[:47])
    out['trunc-48'] = bytes(w[:48])
    out['trunc-l1'] = bytes(w[:52])
    out['trunc-l2'] = bytes(w[:l2_off + 100])
    out['trunc-data'] = bytes(w[:len(w) - 100])
    out['empty-file'] = b''
    out['raw-3'] = b'QFI'
    out['raw-small'] = b'not an image at all\n' * 30
    # Tiny geometry, hand-built: 512-byte clusters, 64-entry L2 tables.
    h = header(size=1024 * 64, cluster_bits=9, l2_bits=6, l1=48)
    l1 = be64(512) + be64(0)
    l2 = be64(1024) + be64(1024) + be64(0) * 62
    out['tiny-shared-data'] = (h + l1).ljust(512, b'\0') + l2 + b'\xcd' * 512
    h = header(size=2**33, cluster_bits=16, l2_bits=13, l1=48)
    out['max-geometry'] = h + be64(0) * 2
    h = header(size=2**33, cluster_bits=9, l2_bits=13, l1=48)
    out['small-cluster-big-l2'] = h + be64(0) * 2
    h = header(size=2**33, cluster_bits=16, l2_bits=6, l1=48)
    out['big-cluster-small-l2'] = h + be64(0) * 2
    return out


def ops_seeds(imgs):
    """Scripts for fuzz-ops: name -> bytes."""
    out = {}

    def u16(x):
        return struct.pack('<H', x & 0xFFFF)

    def u32(x):
        return struct.pack('<I', x & 0xFFFFFFFF)

    def rng(win, off, length):  # a window index, offset, length
        return bytes([win]) + u32(off) + u32(length)

    READ, WRITE, COMP, ZERO, FLUSH, CHECK, EMPTY, REOPEN, STATUS, SNAP, ALL = (
        0, 3, 6, 8, 9, 10, 11, 12, 13, 14, 15)

    def script(*ops):
        return b''.join(ops)

    def w(win, off, length, kind, seed):
        return bytes([WRITE]) + rng(win, off, length) + bytes([kind]) + \
            u32(seed)

    def r(win, off, length):
        return bytes([READ]) + rng(win, off, length)

    def c(win, cluster, n, kind, seed):
        return bytes([COMP, win]) + u16(cluster) + bytes([n, kind]) + \
            u32(seed)

    def z(win, off, length):
        return bytes([ZERO]) + rng(win, off, length)

    def st(win, off, whole):
        return bytes([STATUS, win]) + u32(off) + bytes([whole])

    LONG = 0x80000000
    basic = script(
        w(0, 0, 4096, 2, 7), w(0, 100, LONG | 20000, 3, 9), r(0, 0, 8192),
        c(0, 2, 2, 3, 1), c(0, 5, 1, 2, 5), r(0, 8000, LONG | 30000),
        z(0, 50, 5000), z(0, 0, LONG | 65536), st(0, 0, 1), st(0, 9000, 0),
        bytes([FLUSH]), bytes([SNAP]), bytes([CHECK]), w(0, 4095, 2, 0, 0x41),
        bytes([REOPEN, 1]), bytes([ALL]), c(0, 1, 3, 0, 3), w(0, 5000, 100, 2, 1),
        bytes([CHECK]), bytes([REOPEN, 0]), w(0, 0, 10, 0, 1), r(0, 0, 100),
        bytes([CHECK]), bytes([EMPTY]), bytes([REOPEN, 3]), bytes([EMPTY]),
        r(0, 0, 100), w(1, 3, 4000, 2, 3), bytes([ALL]))
    overwrite_comp = script(
        c(0, 0, 4, 3, 1), c(0, 0, 4, 0, 2), c(0, 1, 1, 2, 3),
        w(0, 10, 30, 0, 4), bytes([CHECK]), bytes([CHECK]), bytes([SNAP]),
        bytes([ALL]))
    # mode: bits 0-2 kind, 3 aes, 4 backing name, 5 small cache,
    # 6 pre-written compressed, 7 large; then cluster selector, size.
    variants = {
        'default-64k': (0x00, 0, 4095),
        'c512': (0x00, 8, 4095),
        'c64k-1m': (0x00, 7, 65535),
        'c1k-odd': (0x01, 1, 1000),
        'aes': (0x08, 0, 4095),
        'aes-c512-smallcache': (0x28, 8, 8000),
        'backing-name': (0x10, 0, 2047),
        'smallcache': (0x20, 8, 20000),
        'precompressed': (0x40, 2, 4095),
        'precompressed-c64k': (0x40, 7, 40000),
        'raw': (0x05, 0, 3000),
        'large-5g': (0x80, 0, 4 | (100 << 3)),
        'large-c512': (0xA0, 8, 7),
        'large-c64k-pre': (0xC0, 7, 2),
        'large-aes': (0x88, 0, 5),
    }
    for name, (mode, csel, zsel) in variants.items():
        out[name] = bytes([mode, csel]) + u16(zsel) + basic
    out['overwrite-comp'] = bytes([0x40, 0, 0xFF, 0x0F]) + overwrite_comp
    # Fuzzed-image mode (kind 6) with qemu-made images embedded.
    for n in ['written', 'compressed', 'aes', 'child-written', 'large']:
        img = imgs[n]
        if len(img) > 40000:
            continue
        out['image-' + n] = bytes([0x06, 0]) + u16(0) + u16(len(img)) + img + \
            basic
    return out


def main():
    with tempfile.TemporaryDirectory() as tmp:
        imgs = qemu_images(tmp)
    for name, data in imgs.items():
        write('fuzz-open', 'qemu-' + name, data)
    for name, data in corrupt_images(imgs).items():
        write('fuzz-open', 'bad-' + name, data)
    for name, data in ops_seeds(imgs).items():
        write('fuzz-ops', name, data)


if __name__ == '__main__':
    main()
