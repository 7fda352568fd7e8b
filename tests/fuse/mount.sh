#!/bin/bash
# qcowkit mount: the guest disk through FUSE, checked against
# `qcowkit convert -O raw` and `qemu-img compare`.  Skips (77) where
# /dev/fuse or fusermount3 is missing or mounting is not permitted.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"

requires_qcowkit
requires fusermount3 qemu-img cmp dd truncate
[ -c /dev/fuse ] || skip "/dev/fuse is missing"
Q=$QCOWKIT

T=$(mktemp -d "${TMPDIR:-/tmp}/fuse-mount.XXXXXX") || fail "mktemp failed"
MOUNTS=() # mountpoints to unmount on exit
PIDS=()   # mount processes to end on exit

is_mounted() {
    grep -q " $1 fuse" /proc/mounts
}

cleanup() {
    local m p
    for m in "${MOUNTS[@]}"; do
        if is_mounted "$m"; then
            fusermount3 -u "$m" 2>/dev/null || fusermount3 -u -z "$m" 2>/dev/null || true
        fi
    done
    for p in "${PIDS[@]}"; do
        end_process "$p"
    done
    rm -rf "$T"
}
trap cleanup EXIT
cd "$T"

# wait_until SECONDS CMD...: poll CMD every 0.1 s; fail after SECONDS.
wait_until() {
    local limit=$(($1 * 10)) i
    shift
    for ((i = 0; i < limit; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    fail "timed out waiting for: $*"
}

not_running() {
    ! kill -0 "$1" 2>/dev/null
}

# mount_bg ARGS...: qcowkit mount in the background (its default) with a
# pid file; the last argument is the mountpoint.  Sets $MPID.
N=0
mount_bg() {
    local mnt=${*: -1} pidf="$T/pid.$((++N))"
    MOUNTS+=("$mnt")
    "$Q" mount --pid-file="$pidf" "$@" || fail "qcowkit mount $* failed"
    # The command returns once mounted and the pid file is written.
    [ -s "$pidf" ] || fail "no pid file after qcowkit mount $*"
    MPID=$(cat "$pidf")
    PIDS+=("$MPID")
    is_mounted "$(realpath "$mnt")" || fail "$mnt is not mounted"
}

# unmount MNT PID: fusermount3 -u, then the process must end by itself.
unmount() {
    fusermount3 -u "$1" || fail "fusermount3 -u $1 failed"
    wait_until 20 not_running "$2"
    ! is_mounted "$(realpath "$1")" || fail "$1 is still mounted"
}

# expect_fail PATTERN CMD...: CMD fails with one line on stderr matching
# PATTERN (grep -E).
expect_fail() {
    local pat=$1 rc=0
    shift
    "$@" >out 2>err || rc=$?
    [ "$rc" -ne 0 ] || fail "'$*' succeeded"
    grep -Eq -- "$pat" err || fail "'$*': stderr '$(cat err)' does not match '$pat'"
    [ "$(wc -l <err)" -eq 1 ] || fail "'$*': stderr is not one line: $(cat err)"
}

# write_both OFFSET COUNT: the same bytes of data.bin into the mounted
# disk ($DISK) and the raw reference (ref.raw), at any alignment.
write_both() {
    local src=$(($1 % 65536))
    dd if=data.bin of="$DISK" bs="$2" count=1 skip="$src" seek="$1" \
        iflag=skip_bytes oflag=seek_bytes conv=notrunc status=none ||
        fail "dd to the mount at $1 (+$2) failed"
    dd if=data.bin of=ref.raw bs="$2" count=1 skip="$src" seek="$1" \
        iflag=skip_bytes oflag=seek_bytes conv=notrunc status=none
}

# ------------------------------------------------------- can we mount?
run "$Q" create -q -f raw probe.raw 1M
touch probe.mnt
MOUNTS+=("$T/probe.mnt")
if ! "$Q" mount -r --pid-file="$T/probe.pid" probe.raw probe.mnt 2>err; then
    if grep -q "built without FUSE" err; then
        skip "qcowkit was built without FUSE"
    fi
    if grep -Eqi "not permitted|permission denied|no such device|/dev/fuse|fusermount" err; then
        skip "mounting is not permitted here: $(cat err)"
    fi
    fail "probe mount failed: $(cat err)"
fi
PIDS+=("$(cat probe.pid)")
unmount probe.mnt "$(cat probe.pid)"
[ ! -e probe.pid ] || fail "the pid file was not removed at exit"

# --------------------------------------------- images: qcow over raw base
head -c 65536 /dev/urandom >data.bin
head -c 3M /dev/urandom >base.raw
run "$Q" create -q -f raw base.raw 4M # grows it to 4M: a zero tail
run "$Q" create -q -f qcow -b base.raw -F raw top.qcow 6M
run "$Q" io -c "write -P 0x5a 1000 70000" -c "write -P 0xa5 5000000 1234" top.qcow
run "$Q" convert -O raw top.qcow expect.raw
[ "$(stat -c %s expect.raw)" = 6291456 ] || fail "convert: wrong size"

# ---------------------------------- read-only, over a regular file: cmp
note "read-only mount over a file"
touch ro.mnt
mount_bg -r top.qcow ro.mnt
[ "$(stat -c %s ro.mnt)" = 6291456 ] || fail "size $(stat -c %s ro.mnt)"
[ "$(stat -c %F ro.mnt)" = "regular file" ] || fail "not a regular file"
cmp ro.mnt expect.raw || fail "read-only mount differs from convert -O raw"
sum=$(md5sum <top.qcow)
# Writes fail: open for writing, and any write.
if dd if=data.bin of=ro.mnt bs=512 count=1 conv=notrunc status=none 2>err; then
    fail "a write to a -r mount succeeded"
fi
grep -q "Read-only file system" err || fail "write on -r: $(cat err)"
expect_fail "Read-only file system" truncate -s 1M ro.mnt
[ "$(md5sum <top.qcow)" = "$sum" ] || fail "the image changed under -r"
# Locked while mounted: readers may share it, a writer is refused.
run "$Q" info top.qcow
expect_fail "in use" "$Q" io -c "write 0 512" top.qcow
expect_fail "in use" "$Q" mount top.qcow probe.mnt
is_mounted "$T/probe.mnt" && fail "a second writer mounted the image"
run "$Q" compare -U top.qcow expect.raw
unmount ro.mnt "$MPID"
# Unlocked again.
run "$Q" io -c "read 0 512" top.qcow

# ------------------------ read-write on a folder: unaligned writes, sizes
note "read-write mount on a folder (foreground)"
mkdir rw.d
DISK=rw.d/disk
MOUNTS+=("$T/rw.d")
cp expect.raw ref.raw
"$Q" mount -F --pid-file=rw.pid top.qcow rw.d 2>fg.err &
FG=$!
PIDS+=("$FG")
wait_until 20 test -s rw.pid
[ "$(cat rw.pid)" = "$FG" ] || fail "pid file $(cat rw.pid), process $FG"
[ "$(ls rw.d)" = disk ] || fail "folder holds: $(ls rw.d)"
[ "$(stat -c %s $DISK)" = 6291456 ] || fail "size $(stat -c %s $DISK)"
cmp $DISK expect.raw || fail "read-write mount reads wrong data"
# The writer holds the lock: no other user, not even qemu-img info.
expect_fail "in use" "$Q" info top.qcow
expect_fail "in use" "$Q" io -c "write 0 512" top.qcow
if qemu-img info top.qcow >/dev/null 2>err; then
    fail "qemu-img opened an image that is mounted read-write"
fi
run "$Q" info -U top.qcow
# Odd offsets and sizes: inside a sector, across sectors and clusters,
# over the backing file's end, over allocated data, at the disk's end.
for w in "1 1" "511 2" "513 1000" "4095 4099" "65535 65537" "3145000 2000" \
    "1500 3000" "999999 12345" "5000100 77" "6291455 1" "6291000 456"; do
    # shellcheck disable=SC2086
    write_both $w
done
# Writes from several processes at once, to disjoint ranges.
for i in 0 1 2 3 4 5 6 7; do
    dd if=data.bin of=$DISK bs=4321 count=1 seek=$((2000000 + i * 100003)) \
        oflag=seek_bytes conv=notrunc,fsync status=none &
done
wait_jobs=$(jobs -p | grep -vx "$FG" || true)
for j in $wait_jobs; do wait "$j" || fail "a parallel dd failed"; done
for i in 0 1 2 3 4 5 6 7; do
    dd if=data.bin of=ref.raw bs=4321 count=1 seek=$((2000000 + i * 100003)) \
        oflag=seek_bytes conv=notrunc status=none
done
# A write past the end is cut short, then refused (a block device's
# ENOSPC); the reference gets the part that fits.
if dd if=data.bin of=$DISK bs=100 count=1 seek=6291400 oflag=seek_bytes \
    conv=notrunc status=none 2>err; then
    fail "a write past the end succeeded"
fi
grep -q "No space left" err || fail "past the end: $(cat err)"
dd if=data.bin of=ref.raw bs=56 count=1 seek=6291400 oflag=seek_bytes \
    conv=notrunc status=none
[ "$(stat -c %s $DISK)" = 6291456 ] || fail "the disk grew"
# O_TRUNC leaves the size alone: a redirection overwrites the start.
printf 'hello' >$DISK || fail "cannot write through a redirection"
printf 'hello' | dd of=ref.raw conv=notrunc status=none
[ "$(stat -c %s $DISK)" = 6291456 ] || fail "O_TRUNC changed the size"
cmp $DISK ref.raw || fail "the mount reads back other data than written"
unmount rw.d "$FG"
rc=0
wait "$FG" || rc=$?
[ "$rc" = 0 ] || fail "qcowkit mount exited $rc: $(cat fg.err)"
[ ! -s fg.err ] || fail "qcowkit mount printed: $(cat fg.err)"
[ ! -e rw.pid ] || fail "the pid file was not removed"
run qemu-img compare -f qcow -F raw top.qcow ref.raw
run "$Q" check top.qcow

# ----------------------------- resize through truncate, SIGTERM flushes
note "truncate resizes; SIGTERM unmounts cleanly"
touch rz.mnt
DISK=rz.mnt
mount_bg top.qcow rz.mnt
truncate -s 8M rz.mnt || fail "truncate -s 8M failed"
[ "$(stat -c %s rz.mnt)" = 8388608 ] || fail "size after truncate $(stat -c %s rz.mnt)"
truncate -s 8M ref.raw
write_both 8000000 3333
kill -TERM "$MPID"
wait_until 20 not_running "$MPID"
! is_mounted "$T/rz.mnt" || fail "still mounted after SIGTERM"
run qemu-img compare -f qcow -F raw top.qcow ref.raw

# SIGINT too, when this shell lets it through (a job started with
# SIGINT ignored keeps it ignored, and libfuse leaves it so).
sigign=$(awk '/^SigIgn:/ { print $2 }' /proc/self/status)
if (((16#$sigign & 2) == 0)); then
    mount_bg top.qcow rz.mnt
    write_both 123 4567
    kill -INT "$MPID"
    wait_until 20 not_running "$MPID"
    ! is_mounted "$T/rz.mnt" || fail "still mounted after SIGINT"
    run qemu-img compare -f qcow -F raw top.qcow ref.raw
else
    note "SIGINT is ignored here: not tested"
fi

# ---------------------- truncate grows an overlay: zeros, not the backing
note "truncate grows an overlay shorter than its backing file: zeros"
head -c 4M /dev/urandom >long.raw # base.raw reads as zeros by now
run "$Q" create -q -f qcow -b long.raw -F raw short.qcow 1049088 # 1M + 512
touch sh.mnt
DISK=sh.mnt
mount_bg short.qcow sh.mnt
head -c 1049088 long.raw >ref.raw
write_both 1000000 3000
truncate -s 3M sh.mnt || fail "truncate -s 3M failed"
truncate -s 3M ref.raw
[ "$(stat -c %s sh.mnt)" = 3145728 ] || fail "size after truncate $(stat -c %s sh.mnt)"
cmp sh.mnt ref.raw || fail "the grown range does not read as zeros"
# Shrink, then grow again: neither the old data nor the backing returns.
truncate -s 512K sh.mnt || fail "truncate -s 512K failed"
truncate -s 2M sh.mnt || fail "truncate -s 2M failed"
truncate -s 512K ref.raw
truncate -s 2M ref.raw
cmp sh.mnt ref.raw || fail "shrink + grow shows old data or the backing file"
unmount sh.mnt "$MPID"
run qemu-img compare -f qcow -F raw short.qcow ref.raw
run "$Q" check short.qcow

# ----------------------------------- the image file itself as mountpoint
note "mount over the image file itself"
run "$Q" convert -O raw top.qcow expect.raw
mount_bg -r top.qcow top.qcow
cmp top.qcow expect.raw || fail "the image covered by its disk differs"
unmount top.qcow "$MPID"
run "$Q" compare top.qcow expect.raw

# ------------------------------------------------------------- encrypted
note "encrypted image"
S="--object secret,id=s,data=hunter2"
O="driver=qcow,file.filename=enc.qcow,encrypt.key-secret=s"
"$Q" create -q -f qcow $S -o encrypt.format=aes,encrypt.key-secret=s \
    enc.qcow 2M 2>/dev/null || fail "cannot create enc.qcow"
run "$Q" io $S --image-opts -c "write -P 0x33 4096 100000" "$O"
run "$Q" convert $S --image-opts "$O" -O raw enc.expect
touch enc.mnt
expect_fail "encrypt.key-secret" "$Q" mount enc.qcow enc.mnt
! is_mounted "$T/enc.mnt" || fail "mounted an encrypted image without a key"
DISK=enc.mnt
cp enc.expect ref.raw
mount_bg $S --image-opts "$O" enc.mnt
cmp enc.mnt enc.expect || fail "encrypted mount differs from convert"
write_both 77777 8888
write_both 2097000 152
cmp enc.mnt ref.raw || fail "encrypted mount reads back other data"
unmount enc.mnt "$MPID"
run "$Q" convert $S --image-opts "$O" -O raw enc.after
cmp enc.after ref.raw || fail "encrypted image holds other data than written"
# The data on disk is not the plaintext (0x33 bytes, written above).
if od -An -tx1 -v enc.qcow | tr -d ' \n' | grep -q "$(printf '3%.0s' {1..256})"; then
    fail "plaintext found in the encrypted image"
fi

# ---------------------------------------------- probed raw: sector 0
# A header of another format must not reach sector 0 of a raw image whose
# format was probed (CVE-2008-2004); with -f raw it may.
note "probed raw image: sector 0 guarded"
printf 'QFI\xfb\0\0\0\1' >hdr
{ printf 'raw!'; head -c 1048572 /dev/zero; } >praw.orig
cp praw.orig praw.raw
touch praw.mnt
mount_bg praw.raw praw.mnt
if dd if=hdr of=praw.mnt bs=8 count=1 conv=notrunc,fsync status=none 2>err; then
    fail "a qcow header was written through the mount"
fi
grep -Eq "Operation not permitted|Input/output error" err ||
    fail "header write: $(cat err)"
printf 'QFI' | dd of=praw.mnt conv=notrunc,fsync status=none ||
    fail "a harmless write to sector 0 failed"
dd if=hdr of=praw.mnt bs=8 count=1 seek=1 conv=notrunc,fsync status=none ||
    fail "a write past the magic's place failed"
unmount praw.mnt "$MPID"
[ "$(head -c 4 praw.raw)" = "QFI!" ] || fail "sector 0 is $(head -c 4 praw.raw | od -An -tx1)"
[ "$("$Q" info praw.raw | sed -n 2p)" = "file format: raw" ] ||
    fail "praw.raw probes as another format"
cp praw.orig praw.raw
mount_bg -f raw praw.raw praw.mnt
dd if=hdr of=praw.mnt bs=8 count=1 conv=notrunc,fsync status=none ||
    fail "-f raw: the header write failed"
unmount praw.mnt "$MPID"
cmp -n 8 hdr praw.raw || fail "-f raw: header not written"

# ------------------------------------------------------ one-line errors
note "errors"
expect_fail "^qcowkit: nowhere: No such file or directory$" \
    "$Q" mount top.qcow nowhere
expect_fail "must be a regular file or a folder" "$Q" mount top.qcow /dev/null
expect_fail "force-share=on can only be used with read-only" \
    "$Q" mount -U top.qcow probe.mnt
expect_fail "^qcowkit: invalid FUSE options: .*bogus" \
    "$Q" mount -o bogus top.qcow probe.mnt
expect_fail "No such file" "$Q" mount missing.qcow probe.mnt
expect_fail "Expecting an image file name and a mountpoint" "$Q" mount top.qcow
! is_mounted "$T/probe.mnt" || fail "a failed mount left a mount behind"
note "all passed"
