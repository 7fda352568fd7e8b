#!/bin/bash
# Hostile review (attack4) of issue 12's wiring: qcowkit mount's fallocate.
# fallocate --zero-range without --keep-size over the disk's end must not
# report success while the disk keeps its size: fallocate(2) promises the
# file grows then.  The mount behaves as a block device (a write past the
# end fails), so it must fail too; either way no silent success.
# Skips (77) where /dev/fuse or fusermount3 is missing or mounting is not
# permitted.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"

requires_qcowkit
requires fusermount3 fallocate
[ -c /dev/fuse ] || skip "/dev/fuse is missing"

MNT=
MPID=
cleanup() {
    if [ -n "$MNT" ] && grep -q " $MNT fuse" /proc/mounts; then
        fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT" 2>/dev/null || true
    fi
    [ -z "$MPID" ] || end_process "$MPID"
    rm -rf "$T"
}
T=$(mktemp -d "${TMPDIR:-/tmp}/attack4.XXXXXX") || fail "mktemp failed"
trap cleanup EXIT
cd "$T"

"$Q" create -q -f qcow img.qcow 1M
"$Q" io -c 'write -q -P 0x66 0 1M' img.qcow
touch d.mnt
MNT=$T/d.mnt
if ! "$Q" mount --pid-file="$T/pid" img.qcow d.mnt 2>err; then
    grep -q "built without FUSE" err && skip "qcowkit was built without FUSE"
    grep -Eqi "not permitted|permission denied|no such device|/dev/fuse|fusermount" err &&
        skip "mounting is not permitted here: $(cat err)"
    fail "qcowkit mount: $(cat err)"
fi
MPID=$(cat pid)

# From 4 KiB before the end to 60 KiB past it, without KEEP_SIZE.
if fallocate -z -o $((1048576 - 4096)) -l 65536 d.mnt 2>err; then
    size=$(stat -c %s d.mnt)
    [ "$size" -ge $((1048576 - 4096 + 65536)) ] ||
        fail "fallocate -z past the end succeeded, yet the disk is still $size bytes"
fi
# With KEEP_SIZE the range is cut at the end, and succeeds.
fallocate -z -n -o $((1048576 - 4096)) -l 65536 d.mnt ||
    fail "fallocate -z -n over the end refused"
[ "$(stat -c %s d.mnt)" = 1048576 ] || fail "fallocate -z -n changed the size"
fusermount3 -u "$MNT"
for i in $(seq 200); do
    kill -0 "$MPID" 2>/dev/null || break
    sleep 0.1
done
"$Q" check img.qcow >out 2>&1 || fail "check: $(cat out)"
echo "attack4: ok"
