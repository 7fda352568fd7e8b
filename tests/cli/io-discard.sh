#!/bin/bash
# qcowkit io discard and write -z -u (issue 12): the same lines and exit
# codes as qemu-io, and, where QEMU's qcow driver does nothing, the space
# given back: the image file's allocated blocks (st_blocks) shrink and the
# range reads as zeros, or from the backing file after a discard.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir

blocks() { stat -c %b "$1"; }
MIB_BLOCKS=2048 # 512-byte blocks in 1 MiB

# shrunk BEFORE FILE MIN_BLOCKS WHAT: FILE lost at least MIN_BLOCKS.
shrunk() {
    local now
    now=$(blocks "$2")
    [ $(($1 - now)) -ge "$3" ] ||
        fail "$4: st_blocks $1 -> $now, expected at least $3 fewer"
}

# ------------------------------------------------ qcow: discard, zeroes
"$Q" create -q -f qcow a.qcow 4M
"$Q" io -c 'write -q -P 1 0 4M' a.qcow
b0=$(blocks a.qcow)
expect_rc 0 "$Q" io -c 'discard 0 1M' a.qcow
[ "$(untime <out)" == "discard 1048576/1048576 bytes at offset 0
1 MiB, 1 ops; TIME" ] || fail "discard output: $(cat out)"
shrunk "$b0" a.qcow $((MIB_BLOCKS - 16)) "discard 0 1M"
# Partial clusters (4 KiB here) stay; the whole one between is cleared.
expect_rc 0 "$Q" io -c 'discard -q 1049576 8000' a.qcow
[ ! -s out ] || fail "discard -q printed: $(cat out)"
expect_rc 0 "$Q" io -c 'read -P 0 0 1M' -c 'read -P 1 1M 4096' \
    -c 'read -P 0 1052672 4096' -c 'read -P 1 1056768 4096' \
    -c 'alloc 0 1M' -c 'alloc 1052672 4096' a.qcow
grep -q '^0/1048576 bytes allocated at offset 0 bytes$' out ||
    fail "discarded clusters still allocated: $(cat out)"
grep -q '^0/4096 bytes allocated' out || fail "middle cluster: $(cat out)"
b1=$(blocks a.qcow)
expect_rc 0 "$Q" io -c 'write -z -u 2M 1M' a.qcow
shrunk "$b1" a.qcow $((MIB_BLOCKS - 16)) "write -z -u 2M 1M"
expect_rc 0 "$Q" io -c 'read -P 0 2M 1M' -c 'read -P 1 3M 1M' a.qcow
# write -z without -u stays allocated, as QEMU's does.
b2=$(blocks a.qcow)
expect_rc 0 "$Q" io -c 'write -z 3M 512k' -c 'read -P 0 3M 512k' a.qcow
[ "$(blocks a.qcow)" -ge "$b2" ] || fail "write -z without -u gave space back"
"$Q" check a.qcow >out 2>&1 || fail "check after discard: $(cat out)"

# Over a backing file: a discard reads the backing data again; zeros
# that may unmap still read as zeros.
"$Q" create -q -f qcow base.qcow 2M
"$Q" io -c 'write -q -P 7 0 2M' base.qcow
"$Q" create -q -f qcow -b base.qcow -F qcow top.qcow
"$Q" io -c 'write -q -P 9 0 2M' top.qcow
b0=$(blocks top.qcow)
expect_rc 0 "$Q" io -c 'discard 0 1M' -c 'write -z -u 1M 1M' top.qcow
shrunk "$b0" top.qcow $((MIB_BLOCKS - 16)) "discard on an overlay"
expect_rc 0 "$Q" io -c 'read -P 7 0 1M' -c 'read -P 0 1M 1M' top.qcow
"$Q" check top.qcow >out 2>&1 || fail "check of the overlay: $(cat out)"

# Read-only: refused before anything is parsed, as qemu-io does.
expect_rc 1 "$Q" io -r -c 'discard 0 4k' a.qcow
expect_err "Block node is read-only"

# ------------------------------------------------------ raw: holes
truncate -s 16M sparse.raw
expect_rc 0 "$Q" io -f raw -c 'write -z -u 0 8M' sparse.raw
[ "$(blocks sparse.raw)" = 0 ] || fail "write -z -u allocated $(blocks sparse.raw) blocks"
truncate -s 16M full.raw
"$Q" io -f raw -c 'write -q -P 3 0 16M' full.raw
b0=$(blocks full.raw)
expect_rc 0 "$Q" io -f raw -c 'discard 0 4M' -c 'write -z -u 4M 4M' full.raw
shrunk "$b0" full.raw $((8 * MIB_BLOCKS)) "raw discard and write -z -u"
expect_rc 0 "$Q" io -f raw -c 'read -P 0 0 8M' -c 'read -P 3 8M 8M' full.raw

if ! have qemu-io || ! have qemu-img; then
    echo "ok (qemu-io or qemu-img missing: the comparisons skipped)"
    exit 0
fi

# ------------------------------------- the same lines and codes as QEMU
norm() { sed -E 's/; [0-9:.]+( sec)? \(.*\)$/; TIME/; s/,0:00:00\.[0-9]+,.*$/,TIME/; s/^(qemu-io|qcowkit): //'; }
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
fresh() { # NAME SIZE FORMAT: a written image in q/ and k/
    rm -rf q k
    mkdir q k
    qemu-img create -q -f "$3" q/"$1" "$2"
    qemu-io -f "$3" -c "write -q -P 5 0 $2" q/"$1"
    cp q/"$1" k/"$1"
}
CASES=('discard 0 64k' 'discard -q 0 64k' 'discard -C 512 1000' 'd 0 512'
    'discard 1k 2k' 'discard 4M 512' 'discard 0 5M' 'discard' 'discard 0'
    'discard -x 0 1' 'discard 0 1 2' 'discard abc 1' 'discard 0 3G'
    'discard 0 0' 'discard 4M 0')
for fmt in qcow raw; do
    fresh img "4M" $fmt
    for c in "${CASES[@]}"; do
        same -f $fmt -c "$c" img
    done
    same -f $fmt -c 'discard 64k 64k' -c 'write -z -u 0 4k' -c 'read -P 0 0 4k'
    same -r -f $fmt -c 'discard 0 4k' img
    same -r -f $fmt -c 'discard abc 4k' img
done
# QEMU's qcow discard is a no-op; a raw file reads zeros there in both.
same -f raw -c 'read -v 64k 16' -c 'alloc 0 4M' img
# A raw file: the very bytes QEMU leaves, and no more blocks than it has.
cmp q/img k/img || fail "raw discards leave other bytes than qemu-io's"
[ "$(blocks k/img)" -le "$(blocks q/img)" ] ||
    fail "raw: st_blocks $(blocks k/img), qemu-io leaves $(blocks q/img)"

# Partial sectors of a raw file: punched byte for byte, as qemu-io does.
fresh p.raw 1M raw
same -f raw -c 'discard -q 512 1000' -c 'discard 5000 3000' \
    -c 'discard -q 100000 100' -c 'discard 1048000 576' p.raw
cmp q/p.raw k/p.raw || fail "partial raw discards: other bytes than qemu-io's"

# write -z -u on raw: as sparse as qemu-io leaves it, same bytes.
for d in q k; do
    rm -f $d/f.raw
    truncate -s 16M $d/f.raw
    qemu-io -f raw -c 'write -q -P 3 0 16M' $d/f.raw
done
same -f raw -c 'write -z -u 4097 8M' -c 'aio_write -z -u 12M 1M' \
    -c 'aio_flush' f.raw
cmp q/f.raw k/f.raw || fail "write -z -u: other bytes than qemu-io's"
[ "$(blocks k/f.raw)" -le "$(blocks q/f.raw)" ] ||
    fail "write -z -u: st_blocks $(blocks k/f.raw), qemu-io $(blocks q/f.raw)"
for d in q k; do
    rm -f $d/s.raw
    truncate -s 16M $d/s.raw
done
same -f raw -c 'write -z -u 0 8M' s.raw
[ "$(blocks k/s.raw)" = "$(blocks q/s.raw)" ] ||
    fail "write -z -u on a sparse file: $(blocks k/s.raw) blocks, qemu-io $(blocks q/s.raw)"
echo ok
