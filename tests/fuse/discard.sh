#!/bin/bash
# qcowkit mount: fallocate --punch-hole through the kernel gives the
# image's space back (issue 12): st_blocks of the image file shrinks, the
# punched range reads zeros (also over a backing file, and at partial
# clusters), and check stays clean.  --zero-range reads zeros too.
# Skips (77) where /dev/fuse or fusermount3 is missing or mounting is not
# permitted.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"

requires_qcowkit
requires fusermount3 fallocate cmp dd
[ -c /dev/fuse ] || skip "/dev/fuse is missing"

MOUNTS=()
PIDS=()
cleanup() {
    local m p
    for m in "${MOUNTS[@]}"; do
        if grep -q " $m fuse" /proc/mounts; then
            fusermount3 -u "$m" 2>/dev/null || fusermount3 -u -z "$m" 2>/dev/null || true
        fi
    done
    for p in "${PIDS[@]}"; do
        end_process "$p"
    done
    rm -rf "$T"
}
T=$(mktemp -d "${TMPDIR:-/tmp}/fuse-discard.XXXXXX") || fail "mktemp failed"
trap cleanup EXIT
cd "$T"

blocks() { stat -c %b "$1"; }
MIB_BLOCKS=2048

# mount_img IMAGE MNT: mount read-write in the background; sets $MPID.
mount_img() {
    touch "$2"
    MOUNTS+=("$T/$2")
    if ! "$Q" mount --pid-file="$T/$2.pid" "$1" "$2" 2>err; then
        grep -q "built without FUSE" err && skip "qcowkit was built without FUSE"
        grep -Eqi "not permitted|permission denied|no such device|/dev/fuse|fusermount" err &&
            skip "mounting is not permitted here: $(cat err)"
        fail "qcowkit mount $1: $(cat err)"
    fi
    MPID=$(cat "$2.pid")
    PIDS+=("$MPID")
}
unmount_img() { # MNT
    local i
    fusermount3 -u "$1" || fail "fusermount3 -u $1"
    for i in $(seq 200); do
        kill -0 "$MPID" 2>/dev/null || return 0
        sleep 0.1
    done
    fail "the mount of $1 did not end"
}
# zeros_at FILE OFFSET LEN: the range reads as zeros.
zeros_at() {
    cmp -n "$3" <(dd if="$1" bs=64k iflag=skip_bytes,count_bytes skip="$2" \
        count="$3" status=none) /dev/zero ||
        fail "$1 at $2 (+$3) does not read zeros"
}
# byte_at FILE OFFSET: one byte, in hex.
byte_at() {
    dd if="$1" bs=1 skip="$2" count=1 status=none | od -An -tx1 | tr -d ' '
}

# ------------------------------------------------------ without backing
"$Q" create -q -f qcow img.qcow 8M
"$Q" io -c 'write -q -P 0x66 0 8M' img.qcow
b0=$(blocks img.qcow)
mount_img img.qcow d.mnt
fallocate -p -o 1M -l 2M d.mnt || fail "fallocate -p refused"
# Unaligned: the partial clusters at both ends read zeros too.
fallocate -p -o 5000 -l 10000 d.mnt
fallocate -z -o 6M -l 1M d.mnt || fail "fallocate -z refused"
zeros_at d.mnt 1048576 2097152
zeros_at d.mnt 5000 10000
zeros_at d.mnt 6291456 1048576
[ "$(byte_at d.mnt 4999)" = 66 ] || fail "byte before the punch changed"
[ "$(byte_at d.mnt 15000)" = 66 ] || fail "byte after the punch changed"
[ "$(stat -c %s d.mnt)" = 8388608 ] || fail "the punch changed the size"
unmount_img d.mnt
shrunk=$((b0 - $(blocks img.qcow)))
[ "$shrunk" -ge $((2 * MIB_BLOCKS - 16)) ] ||
    fail "punch gave back $shrunk blocks of $b0"
"$Q" check img.qcow >out 2>&1 || fail "check after the punch: $(cat out)"
"$Q" io -c 'read -P 0 1M 2M' -c 'read -P 0 5000 10000' \
    -c 'read -P 0x66 3M 3M' img.qcow >out || fail "after unmount: $(cat out)"

# ----------------------------------------- over a backing file: zeros
"$Q" create -q -f qcow base.qcow 4M
"$Q" io -c 'write -q -P 7 0 4M' base.qcow
"$Q" create -q -f qcow -b base.qcow -F qcow top.qcow
"$Q" io -c 'write -q -P 9 0 4M' top.qcow
b0=$(blocks top.qcow)
mount_img top.qcow t.mnt
fallocate -p -o 1M -l 1M t.mnt
fallocate -p -o 3000 -l 3000 t.mnt
zeros_at t.mnt 1048576 1048576
zeros_at t.mnt 3000 3000
[ "$(byte_at t.mnt 2999)" = 09 ] || fail "overlay: byte before the punch"
[ "$(byte_at t.mnt 2097152)" = 09 ] || fail "overlay: byte after the punch"
unmount_img t.mnt
shrunk=$((b0 - $(blocks top.qcow)))
[ "$shrunk" -ge $((MIB_BLOCKS / 2)) ] ||
    fail "overlay: punch gave back $shrunk blocks of $b0"
"$Q" check top.qcow >out 2>&1 || fail "check of the overlay: $(cat out)"
"$Q" io -c 'read -P 0 1M 1M' -c 'read -P 0 3000 3000' top.qcow >out ||
    fail "overlay after unmount: $(cat out)"
echo ok
