#!/bin/bash
# create -o preallocation=off|falloc|full and measure -o preallocation,
# against qemu-img: the same "Formatting" line, file size and allocated
# blocks for raw (falloc reserves, full writes zeros), the same qcow file
# (QEMU's qcow ignores the mode), and the same refusals.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir
have qemu-img || { echo "qemu-img missing" >&2; exit 77; }

blocks() { stat -c %b "$1"; }

for size in 5M 1536k; do
    for mode in falloc full; do
        qemu-img create -f raw -o preallocation=$mode q.raw $size >q.out
        expect_rc 0 "$Q" create -f raw -o preallocation=$mode k.raw $size
        expect_out "$(sed 's/q\.raw/k.raw/' q.out)"
        [ "$(stat -c %s k.raw)" = "$(stat -c %s q.raw)" ] ||
            fail "$mode $size: size $(stat -c %s k.raw), qemu-img $(stat -c %s q.raw)"
        [ "$(blocks k.raw)" = "$(blocks q.raw)" ] ||
            fail "$mode $size: $(blocks k.raw) blocks, qemu-img $(blocks q.raw)"
        # Every byte is allocated and reads as zero.
        [ "$(blocks k.raw)" -ge "$(($(stat -c %s k.raw) / 512))" ] ||
            fail "$mode $size: not fully allocated ($(blocks k.raw) blocks)"
        cmp -s k.raw <(head -c "$(stat -c %s k.raw)" /dev/zero) ||
            fail "$mode $size: does not read as zeros"
        qemu-img compare -q -f raw -F raw k.raw q.raw || fail "$mode: contents"
    done
    # off stays sparse (QEMU allocates one block; qcowkit none).
    qemu-img create -q -f raw -o preallocation=off q.raw $size
    expect_rc 0 "$Q" create -q -f raw -o preallocation=off k.raw $size
    [ "$(blocks k.raw)" -le "$(blocks q.raw)" ] ||
        fail "off: $(blocks k.raw) blocks, qemu-img $(blocks q.raw)"
done
# Over an existing, fully written file: full leaves zeros, not old data.
head -c 1M /dev/urandom >old.raw
expect_rc 0 "$Q" create -q -f raw -o preallocation=full old.raw 1M
cmp -s old.raw <(head -c 1M /dev/zero) || fail "full kept old data"
expect_rc 0 "$Q" create -q -f raw -o preallocation=full zero.raw 0
[ "$(stat -c %s zero.raw)" = 0 ] || fail "size 0 grew"

# qcow: QEMU takes off, falloc and full and writes the same file as
# without; a backing file does not change that.
for mode in off falloc full; do
    for extra in "" "-b a.qcow -F qcow"; do
        rm -f a.qcow && qemu-img create -q -f qcow a.qcow 1M
        # shellcheck disable=SC2086
        qemu-img create -f qcow $extra -o preallocation=$mode q.qcow 1M >q.out
        # shellcheck disable=SC2086
        expect_rc 0 "$Q" create -f qcow $extra -o preallocation=$mode k.qcow 1M
        expect_out "$(sed 's/q\.qcow/k.qcow/' q.out)"
        same_files k.qcow q.qcow "qcow preallocation=$mode $extra"
    done
done

# Refusals: QEMU's message and exit code, for both formats.  (QEMU also
# empties the file when it refuses metadata; qcowkit leaves it alone.)
for fmt in raw qcow; do
    for mode in metadata bogus FULL; do
        qrc=0
        qemu-img create -f $fmt -o preallocation=$mode q.img 1M >q.out 2>q.err || qrc=$?
        cp old.raw k.img
        expect_rc "$qrc" "$Q" create -f $fmt -o preallocation=$mode k.img 1M
        [ "$qrc" = 1 ] || fail "qemu-img took preallocation=$mode for $fmt"
        expect_out "$(sed 's/q\.img/k.img/' q.out)"
        [ "$(sed 's/^qcowkit: k\.img/X/' err)" = "$(sed 's/^qemu-img: q\.img/X/' q.err)" ] ||
            fail "$fmt $mode: '$(cat err)', qemu-img '$(cat q.err)'"
        same_files k.img old.raw "refused preallocation=$mode changed the file"
    done
done
expect_rc 0 "$Q" create -f raw -o help
grep -q "^  preallocation=<str> " out || fail "-o help does not list preallocation"

# measure: for raw qemu-img ignores the mode, whatever it is, from a size
# and from a file.
qemu-img create -q -f qcow src.qcow 4M
expect_rc 0 "$Q" io -f qcow -c 'write -P 1 1M 64k' src.qcow
for mode in off falloc full metadata bogus; do
    for what in "--size 3M" "src.qcow"; do
        # shellcheck disable=SC2086
        qemu-img measure -O raw -o preallocation=$mode $what >q.out
        # shellcheck disable=SC2086
        expect_rc 0 "$Q" measure -O raw -o preallocation=$mode $what
        cmp -s out q.out || fail "measure raw $mode $what: $(cat out)"
    done
done
# For qcow (which QEMU cannot measure) the figures are those without the
# option, and the modes create refuses are refused.
expect_rc 0 "$Q" measure -O qcow src.qcow
cp out plain.out
for mode in off falloc full; do
    expect_rc 0 "$Q" measure -O qcow -o preallocation=$mode src.qcow
    cmp -s out plain.out || fail "measure qcow $mode: $(cat out)"
done
expect_rc 1 "$Q" measure -O qcow -o preallocation=metadata src.qcow
grep -q "Unsupported preallocation mode: metadata" err || fail "measure metadata: $(cat err)"
expect_rc 1 "$Q" measure -O qcow -o preallocation=bogus --size 1M
grep -q "invalid parameter value: bogus" err || fail "measure bogus: $(cat err)"
echo "preallocation: matches qemu-img"
