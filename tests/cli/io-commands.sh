#!/bin/bash
# qcowkit io: the qemu-io options and commands scripts use (open, close,
# truncate, sleep, readv/writev, aio_*, -V, -m, -n, -C) and raw files whose
# size is not a multiple of 512, each against qemu-io's output and status.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir

# Without qemu-io: what must hold anyway.
"$Q" create -q -f qcow a.qcow 1M
expect_rc 0 "$Q" io -V
grep -q "^qcowkit io version " out || fail "-V: $(cat out)"
expect_rc 0 "$Q" io --version
# -m takes no value: the -c after it is still a command.
expect_rc 0 "$Q" io -m -c 'write -P 1 0 512' a.qcow
grep -q '^wrote 512/512' out || fail "-m swallowed -c: $(cat out)"
expect_rc 0 "$Q" io -n -c 'read -P 1 0 512' a.qcow
expect_rc 0 "$Q" io --nocache -c 'read -P 1 0 512' a.qcow
expect_rc 0 "$Q" io -c 'open a.qcow' -c 'read -P 1 0 512'
expect_rc 1 "$Q" io -c 'open a.qcow' -c close -c 'read 0 512'
expect_err "^no file open, try 'help open'$"
expect_rc 1 "$Q" io -c 'read 0 512'
expect_err "^no file open, try 'help open'$"
expect_rc 0 "$Q" io -c 'writev -P 9 0 512 1k' -c 'readv -P 9 0 1k 512' a.qcow
[ "$(untime <out)" == "wrote 1536/1536 bytes at offset 0
1.500 KiB, 1 ops; TIME
read 1536/1536 bytes at offset 0
1.500 KiB, 1 ops; TIME" ] || fail "writev/readv: $(cat out)"

# -C on an overlay: the clusters read are stored in it, the data unchanged.
"$Q" create -q -f qcow base.qcow 1M
"$Q" io -c 'write -q -P 7 0 1M' base.qcow
"$Q" create -q -f qcow -b base.qcow -F qcow top.qcow
expect_rc 0 "$Q" io -C -c 'read -P 7 64k 4k' -c 'alloc 64k 4k' top.qcow
grep -q '^4096/4096 bytes allocated at offset 64 KiB$' out || fail "-C: $(cat out)"
expect_rc 1 "$Q" io -C -r -c 'read 0 1' top.qcow
expect_err "Can't use copy-on-read on read-only device"

# A raw file of 1000 bytes is 1 KiB to io, its tail reads as zeros and
# a write there extends the file.
head -c 1000 /dev/urandom >u.raw
expect_rc 0 "$Q" io -f raw -c length -c 'read -P 0 1000 24' -c 'write -P 7 1020 4' u.raw
[ "$(head -1 out)" == "1 KiB" ] || fail "raw length: $(cat out)"
[ "$(stat -c %s u.raw)" == 1024 ] || fail "raw tail write: $(stat -c %s u.raw)"

if ! have qemu-io || ! have qemu-img; then
    echo "ok (qemu-io or qemu-img missing: the comparisons skipped)"
    exit 0
fi

# Same stdout, stderr (the program name aside) and status as qemu-io.
# IMG names a file both copies of which are in q/ and k/.
norm() { sed -E 's/[0-9:.]+ sec \(.*\)$/TIME/; s/,0:00:00\.[0-9]+,.*$/,TIME/; s/^(qemu-io|qcowkit): //'; }
same() { # ARGS... : run both in q/ and k/ and compare
    local rq rk
    (cd q && qemu-io "$@" >../q.out 2>../q.err) && rq=0 || rq=$?
    (cd k && "$Q" io "$@" >../k.out 2>../k.err) && rk=0 || rk=$?
    [ "$rq" == "$rk" ] || fail "status qemu-io $rq, qcowkit $rk: $*
$(cat q.out q.err)
--
$(cat k.out k.err)"
    diff <(norm <q.out) <(norm <k.out) >/dev/null ||
        fail "stdout differs for $*: $(diff <(norm <q.out) <(norm <k.out))"
    diff <(norm <q.err) <(norm <k.err) >/dev/null ||
        fail "stderr differs for $*: $(diff <(norm <q.err) <(norm <k.err))"
}
fresh() { # NAME SIZE [qemu-img create options...]
    local name=$1 size=$2
    shift 2
    rm -rf q k
    mkdir q k
    qemu-img create -q "$@" q/"$name" "$size"
    cp q/"$name" k/"$name"
}
same_files() { cmp q/"$1" k/"$1" || fail "$1 differs after: ${*:2}"; }

fresh a.qcow 1M -f qcow
same -m -c 'write -P 3 0 4k' -c 'read -P 3 0 4k' a.qcow
same -n -c 'read -P 3 0 4k' a.qcow
same --nocache -c 'read -P 3 0 4k' a.qcow
# open and close
same -c 'open a.qcow' -c 'read -P 3 0 512'
same -c 'open -r a.qcow' -c close -c 'read 0 512'
same -c 'read 0 512'
same -c close
same -c 'open a.qcow' -c 'open a.qcow' -c 'read 0 1'
same -c open
same -c 'open -x a.qcow'
same -c 'open -o driver=qcow a.qcow' -c info
same -c 'open -r a.qcow' -c 'write 0 512'
same -c 'open -s a.qcow' -c 'write -P 9 0 512' -c 'read -P 9 0 512'
same -c 'help close' -c 'help sleep' -c 'help truncate'
qemu-img create -q -f qcow q/b.qcow 64k
cp q/b.qcow k/b.qcow
same -c 'open a.qcow' -c close -c 'open b.qcow' -c length -c close -c quit
# A failed open leaves none open (the error's words are qcowkit's own).
(cd k && expect_rc 1 "$Q" io -c 'open missing.qcow' -c 'open -r b.qcow' \
    -c 'read 0 512')
grep -q '^read 512/512 bytes at offset 0$' k/out || fail "open after a failed open"
same -c 'open -C -r a.qcow'
same -c quit -c 'read 0 1'
# Commands from standard input, with no file given.
a=$(cd q && printf 'open a.qcow\nread -P 3 0 512\nclose\nlength\n' |
    qemu-io 2>&1 | sed 's/qemu-io> //g' | norm || true)
b=$(cd k && printf 'open a.qcow\nread -P 3 0 512\nclose\nlength\n' |
    "$Q" io 2>&1 | sed 's/qcowkit> //g' | norm || true)
[ "$a" == "$b" ] || fail "stdin without a file: $(diff <(echo "$a") <(echo "$b"))"
# sleep, truncate (qcow cannot be resized by QEMU: see the README)
same -c 'sleep 10'
same -c 'sleep abc' a.qcow
same -c 'truncate abc' a.qcow
same -c 'truncate -m bogus 1M' a.qcow
same -r -c 'truncate 1M' a.qcow
# readv, writev
same -c 'writev -P 3 0 512 1k 100' -c 'readv -P 3 0 512 1k 100' \
    -c 'readv -v 0 10 6' -c 'readv -P 4 0 512' -c 'writev -C 4k 512' \
    -c 'readv -C -q 0 512' a.qcow
same -c 'writev -q 0' a.qcow
same -c 'readv 0' a.qcow
same -c 'readv -x 0 1' a.qcow
same -c 'writev 0 abc' -c 'readv 1M 512' -c 'writev 0 0' -c 'readv 0 0 1' a.qcow
same -r -c 'writev 0 512' a.qcow
same -c 'readv 0 3G' -c 'writev 0 2G 2G' a.qcow
same_files a.qcow "readv/writev"
# aio_*: each followed by aio_flush, so that qemu-io's order is fixed.
same -c 'aio_write -P 5 0 512 512' -c aio_flush -c 'aio_read -P 5 0 1k' \
    -c aio_flush -c 'aio_read -v 0 4' -c aio_flush -c 'aio_read -P 6 0 512' \
    -c aio_flush -c 'aio_read -i 0 512' -c 'aio_write -i 0 512' \
    -c 'aio_read 2M 1' -c aio_flush -c 'aio_write -u 0 1' a.qcow
same -c 'aio_write -f -P 1 8k 1' -c aio_flush -c 'aio_read -C 8k 1' -c aio_flush a.qcow
same -c 'aio_read 0' a.qcow
same -c 'aio_write 0 abc' a.qcow
same -c 'aio_read -x 0 1' a.qcow
same -r -c 'aio_write 0 512' a.qcow
same_files a.qcow "aio"

# write -z -n (no fallback): refused on qcow, done on raw, as in qemu-io.
fresh z.qcow 1M -f qcow
same -c 'write -z -n 0 64k' -c 'write -z -n -u 64k 64k' -c 'write -z 0 4k' z.qcow
same_files z.qcow "write -z -n"
fresh z.raw 1M -f raw
same -f raw -c 'write -P 1 0 1M' -c 'write -z -n 0 64k' -c 'read -P 0 0 64k' z.raw
same_files z.raw "write -z -n on raw"

# -C: without a backing file, and over one.
fresh nob.qcow 1M -f qcow
same -C -c 'read 5000 100' -c map nob.qcow
same_files nob.qcow "-C"
same -C -r -c 'read 0 1' nob.qcow
rm -rf q k
mkdir q k
qemu-img create -q -f qcow base.qcow 1M
qemu-io -c 'write -q -P 7 0 1M' base.qcow
for d in q k; do
    qemu-img create -q -f qcow -b ../base.qcow -F qcow $d/top.qcow
done
same -C -c 'read -P 7 5000 100' -c 'read -P 7 64k 4k' -c map top.qcow
"$Q" compare base.qcow k/top.qcow >/dev/null || fail "-C changed the data"

# Raw files whose size is not a multiple of 512.
rm -rf q k
mkdir q k
head -c 1000 /dev/urandom >q/u.raw
cp q/u.raw k/u.raw
same -f raw -c length -c 'read 1000 24' -c 'read -v 1020 4' -c 'read 1023 2' \
    -c 'read 1024 1' -c 'alloc 0 2k' -c map u.raw
same -f raw -c 'write -P 7 1020 4' -c 'read -P 7 1020 4' -c length u.raw
same_files u.raw "a write in the tail"
same -f raw -c 'truncate 100000' -c length -c 'truncate 1000' -c length \
    -c 'read 999 2' -c 'readv 990 10 20' u.raw
same_files u.raw "truncate"
echo ok
