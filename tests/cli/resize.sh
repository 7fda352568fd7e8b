#!/bin/bash
# qcowkit resize: qemu-img's rules and messages; grown qcow images read as a
# raw reference truncated the same way, and qemu-img reads and writes them.
# (QEMU 7.2 cannot resize qcow images; raw images are checked against it.)
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir
have qemu-img && have qemu-io || { echo "qemu-img/qemu-io missing" >&2; exit 77; }

qemu-img create -q -f qcow a.qcow 1M
qemu-io -f qcow -c 'write -P 4 0 1M' a.qcow >/dev/null
qemu-img convert -O raw a.qcow ref.raw

# Grow (absolute, then relative: the L1 table outgrows its place).
expect_rc 0 "$Q" resize a.qcow 3M
expect_out "Image resized."
truncate -s 3M ref.raw
qemu-img compare -q a.qcow ref.raw || fail "grown image differs from the reference"
expect_rc 0 "$Q" resize -q a.qcow +61M
expect_out ""
truncate -s 64M ref.raw
qemu-img compare -q a.qcow ref.raw || fail "second grow"
qemu-img info a.qcow | grep -q "virtual size: 64 MiB" || fail "qemu-img sees the old size"
# qemu-io writes beyond the old end, qcowkit reads it back.
qemu-io -f qcow -c 'write -P 6 40M 64k' -c 'write -P 7 2M 4k' a.qcow >/dev/null
expect_rc 0 "$Q" io -c 'read -P 6 40M 64k' -c 'read -P 7 2M 4k' -c 'read -P 4 0 1M' \
    -c 'read -P 0 1M 1M' a.qcow
! grep -q "Pattern verification failed" out || fail "data after grow: $(cat out)"
expect_rc 0 "$Q" check a.qcow

# Shrinking needs --shrink (qemu-img's message, exit 1, image unchanged).
for size in 1M -1M; do
    expect_rc 1 "$Q" resize a.qcow "$size"
    grep -q "^qcowkit: Use the --shrink option to perform a shrink operation.$" err ||
        fail "shrink message: $(cat err)"
    grep -q "warning: Shrinking an image will delete all data" err ||
        fail "shrink warning"
done
qemu-img info a.qcow | grep -q "virtual size: 64 MiB" || fail "refused shrink changed size"
# What falls off reads as zeros when the image grows again (the cut is
# inside a cluster).
expect_rc 0 "$Q" resize --shrink a.qcow 1536k
expect_out "Image resized."
expect_rc 0 "$Q" resize a.qcow 48M
truncate -s 1M ref.raw
truncate -s 48M ref.raw
qemu-img compare -q a.qcow ref.raw || fail "shrunk data came back"
expect_rc 0 "$Q" resize --shrink a.qcow 1000k
expect_rc 0 "$Q" resize a.qcow +1M
qemu-io -f qcow -c 'read -P 4 0 1000k' -c 'read -P 0 1000k 1M' a.qcow |
    grep -q Pattern && fail "cut inside a cluster"

# Overlays: what a grow adds reads as zeros, as in QEMU, not the backing
# file (raw or qcow), also past an unaligned old end and after a shrink.
# qemu-img reads our result.
head -c 2M /dev/urandom >base.raw
qemu-img create -q -f qcow -b base.raw -F raw base.qcow 2M
qemu-io -f qcow -c 'write -P 9 0 2M' base.qcow >/dev/null
for fmt in raw qcow; do
    rm -f o.qcow
    expect_rc 0 "$Q" create -q -f qcow -b "base.$fmt" -F "$fmt" o.qcow 524800
    qemu-io -f qcow -c 'write -P 5 4096 4096' o.qcow >/dev/null
    qemu-img convert -O raw o.qcow ref.raw
    expect_rc 0 "$Q" resize o.qcow 1M
    truncate -s 1M ref.raw
    qemu-img compare -q o.qcow ref.raw || fail "$fmt: grown overlay shows its backing file"
    qemu-io -f qcow -c 'read -P 0 524800 523776' o.qcow | grep -q Pattern &&
        fail "$fmt: qemu-io reads no zeros past the old end"
    expect_rc 0 "$Q" check o.qcow
    # Write everywhere, shrink, grow past the backing file's end.
    qemu-io -f qcow -c 'write -P 8 0 1M' o.qcow >/dev/null
    expect_rc 0 "$Q" resize --shrink o.qcow 256k
    expect_rc 0 "$Q" resize o.qcow 3M
    qemu-io -f qcow -c 'read -P 8 0 256k' -c 'read -P 0 256k 2816k' o.qcow |
        grep -q Pattern && fail "$fmt: shrink + grow shows old or backing data"
    qemu-img convert -O raw o.qcow got.raw
    head -c 256k /dev/zero | tr '\0' '\10' >ref.raw
    truncate -s 3M ref.raw
    cmp got.raw ref.raw || fail "$fmt: qemu-img convert after shrink + grow"
    expect_rc 0 "$Q" check o.qcow
    grep -q "^No errors were found on the image.$" out || fail "$fmt: check: $(cat out)"
done

# Refusals, with qemu-img's messages.
expect_rc 1 "$Q" resize a.qcow
expect_err "^qcowkit: Not enough arguments$"
expect_rc 1 "$Q" resize a.qcow 0
expect_err "^qcowkit: New image size must be positive$"
expect_rc 1 "$Q" resize --shrink a.qcow -100M
expect_err "^qcowkit: New image size must be positive$"
expect_rc 1 "$Q" resize a.qcow 1x
expect_err "^qcowkit: Parameter 'size' expects a non-negative number below 2\^64"
expect_rc 1 "$Q" resize a.qcow +1000
expect_err "^qcowkit: The new size must be a multiple of 512$"
expect_rc 1 "$Q" resize a.qcow b.qcow 1M
expect_err "Expecting image file name and size"

# Raw images: the same steps with both tools give the same files.
truncate -s 1M k.raw
qemu-io -f raw -c 'write -P 3 0 1M' k.raw >/dev/null
cp k.raw q.raw
for step in "+1M" "3000000" "--shrink 1M" "--shrink -1000" "+5000"; do
    read -r -a args <<<"$step"
    n=${#args[@]}
    opts=("${args[@]:0:n-1}")
    size=${args[n-1]}
    expect_rc 0 "$Q" resize -f raw "${opts[@]}" k.raw "$size"
    expect_out "Image resized."
    qemu-img resize -q -f raw "${opts[@]}" q.raw "$size" || fail "qemu-img $step"
    cmp k.raw q.raw || fail "raw resize $step differs"
    [ "$(stat -c %s k.raw)" -eq "$(stat -c %s q.raw)" ] || fail "raw size $step"
done
expect_rc 1 "$Q" resize -f raw k.raw 1k
q_rc=0
qemu-img resize -f raw q.raw 1k 2>q.err || q_rc=$?
[ "$q_rc" -eq 1 ] || fail "qemu-img shrink without --shrink exited $q_rc"
diff <(sed 's/^qemu-img: //; s/^qcowkit: //' err) \
    <(sed 's/^qemu-img: //; s/^qcowkit: //' q.err) || fail "shrink messages differ"
echo ok
