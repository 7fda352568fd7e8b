#!/bin/bash
# Images and backing files that are not files: a FIFO, a socket, a
# folder and a character device (/dev/zero).  Every command that opens
# an image refuses each of them at once (a FIFO used to hang convert
# and io for ever) with one line naming the file, and for a backing file
# the image too.  Block devices (a loop device, when one can be made)
# still work as images, as convert's target included.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
requires python3 timeout
enter_tmpdir

LOOP=
cleanup() {
    [ -z "$LOOP" ] || losetup -d "$LOOP" 2>/dev/null || true
    _harness_exit
}
trap cleanup EXIT

mkfifo fifo
python3 -S -c '
import socket
s = socket.socket(socket.AF_UNIX)
s.bind("socket")
s.close()'
mkdir folder
[ -p fifo ] && [ -S socket ] && [ -d folder ] && [ -c /dev/zero ] ||
    fail "cannot make the files under test"

"$Q" create -q -f qcow good.qcow 1M
"$Q" io -c 'write -P 3 0 64k' good.qcow >/dev/null
cp good.qcow good.orig

# what_of PATH: the words of the refusal for that kind of file.
what_of() {
    case $1 in
    fifo) echo "is a FIFO" ;;
    socket) echo "is a socket" ;;
    folder) echo "Is a directory" ;;
    /dev/zero) echo "is a character device" ;;
    esac
}

# refused WHAT NAMES CMD...: CMD exits non-zero within 10 s, printing
# one line on stderr with WHAT and every name in NAMES (space separated).
refused() {
    local what=$1 names=$2 rc=0 n
    shift 2
    timeout 10 "$@" </dev/null >out 2>err || rc=$?
    [ "$rc" != 124 ] || fail "still running after 10 s: $*"
    [ "$rc" != 0 ] || fail "not refused: $*"
    [ "$(wc -l <err)" = 1 ] || fail "not one line from $*: $(cat err)"
    grep -qF "$what" err || fail "'$what' not in the message of $*: $(cat err)"
    for n in $names; do
        grep -qF "$n" err || fail "'$n' not named by $*: $(cat err)"
    done
    cmp -s good.qcow good.orig || fail "good.qcow changed by $*"
}

have_mount=1
"$Q" help mount 2>&1 | grep -q "MOUNTPOINT" || have_mount=
mkdir mnt

for bad in fifo socket folder /dev/zero; do
    what=$(what_of "$bad")
    rm -f ov.qcow
    note "$bad as the image"
    for cmd in info check map commit measure; do
        refused "$what" "$bad" "$Q" $cmd "$bad"
    done
    refused "$what" "$bad" "$Q" convert -O raw "$bad" out.raw
    refused "$what" "$bad" "$Q" convert -O raw good.qcow "$bad"
    refused "$what" "$bad" "$Q" convert -O qcow good.qcow "$bad"
    refused "$what" "$bad" "$Q" compare good.qcow "$bad"
    refused "$what" "$bad" "$Q" compare "$bad" good.qcow
    refused "$what" "$bad" "$Q" resize "$bad" 2M
    refused "$what" "$bad" "$Q" resize -f raw "$bad" 2M
    refused "$what" "$bad" "$Q" dd if="$bad" of=out.raw
    refused "$what" "$bad" "$Q" dd if=good.qcow of="$bad"
    refused "$what" "$bad" "$Q" io -c 'read 0 4k' "$bad"
    refused "$what" "$bad" "$Q" io -c 'write 0 4k' "$bad"
    refused "$what" "$bad" "$Q" nbd -k "$T/nbd.sock" "$bad"
    if [ -n "$have_mount" ]; then
        refused "$what" "$bad" "$Q" mount "$bad" mnt
    fi
    # The new backing file of a safe rebase, and of create.
    refused "$what" "$bad" "$Q" rebase -b "$bad" -F raw good.qcow
    refused "$what" "ov.qcow $bad" \
        "$Q" create -q -f qcow -b "$bad" -F raw ov.qcow 1M
    [ ! -e ov.qcow ] || fail "create -b $bad made ov.qcow"
    [ -e "$bad" ] || fail "$bad vanished"

    note "$bad as the backing file"
    rm -f ov.qcow
    "$Q" create -q -f qcow -u -b "$bad" -F raw ov.qcow 1M
    for cmd in map commit measure; do
        refused "$what" "ov.qcow $bad" "$Q" $cmd ov.qcow
    done
    # info walks the chain one file at a time: the line names the file.
    refused "$what" "$bad" "$Q" info --backing-chain ov.qcow
    refused "$what" "ov.qcow $bad" "$Q" convert -O raw ov.qcow out.raw
    refused "$what" "out.qcow $bad" \
        "$Q" convert -O qcow -B "$bad" -F raw good.qcow out.qcow
    refused "$what" "ov.qcow $bad" "$Q" compare good.qcow ov.qcow
    refused "$what" "ov.qcow $bad" "$Q" compare ov.qcow good.qcow
    refused "$what" "ov.qcow $bad" "$Q" rebase -b good.qcow ov.qcow
    refused "$what" "ov.qcow $bad" "$Q" resize ov.qcow 2M
    refused "$what" "ov.qcow $bad" "$Q" dd if=ov.qcow of=out.raw
    refused "$what" "ov.qcow $bad" "$Q" io -c 'read 0 4k' ov.qcow
    refused "$what" "ov.qcow $bad" "$Q" nbd -k "$T/nbd.sock" ov.qcow
    if [ -n "$have_mount" ]; then
        refused "$what" "ov.qcow $bad" "$Q" mount ov.qcow mnt
    fi
done

# ------------------------------------------------ symlinks and devices

ln -s good.qcow link.qcow
expect_rc 0 "$Q" io -c 'read -P 3 0 64k' link.qcow
"$Q" create -q -f qcow -b link.qcow -F qcow over-link.qcow
expect_rc 0 "$Q" io -c 'read -P 3 0 64k' over-link.qcow

if [ "$(id -u)" != 0 ] || ! have losetup; then
    note "SKIP block devices: losetup as root is needed"
    exit 0
fi
truncate -s 8M dev.img
LOOP=$(losetup -f --show dev.img 2>/dev/null) || LOOP=
if [ -z "$LOOP" ]; then
    note "SKIP block devices: no loop device could be attached"
    exit 0
fi
note "block device $LOOP"
dd if=/dev/urandom of="$LOOP" bs=1M count=8 status=none
# convert onto the device: the unwritten part reads zeros, not old bytes.
expect_rc 0 "$Q" convert -O raw good.qcow "$LOOP"
expect_rc 0 "$Q" info "$LOOP"
grep -q "virtual size: 8 MiB" out || fail "size of $LOOP: $(cat out)"
expect_rc 0 "$Q" io -c 'read -P 3 0 64k' -c 'read -P 0 64k 8128k' "$LOOP"
expect_rc 0 "$Q" compare good.qcow "$LOOP"
expect_rc 0 "$Q" convert -O qcow "$LOOP" from-dev.qcow
expect_rc 0 "$Q" compare "$LOOP" from-dev.qcow
# A qcow image on the device, and as a backing file.
dd if=good.qcow of="$LOOP" conv=notrunc status=none
expect_rc 0 "$Q" io -r -c 'read -P 3 0 64k' "$LOOP"
"$Q" create -q -f qcow -b "$LOOP" -F qcow over-dev.qcow
expect_rc 0 "$Q" io -c 'read -P 3 0 64k' over-dev.qcow
refused "No space left" "$LOOP" "$Q" resize -f raw "$LOOP" 16M
note "ok"
