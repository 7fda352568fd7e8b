#!/bin/bash
# qcowkit dd against qemu-img dd: raw outputs byte-identical, qcow outputs
# read as qemu-img's raw output (qemu-img compare), same sizes and quirks
# (count limits the input read, skip included).
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir
have qemu-img && have qemu-io || { echo "qemu-img/qemu-io missing" >&2; exit 77; }

qemu-img create -q -f qcow base.qcow 4M
qemu-io -f qcow -c 'write -P 1 0 2M' base.qcow >/dev/null
qemu-img create -q -f qcow -b base.qcow -F qcow in.qcow
qemu-io -f qcow -c 'write -P 2 512k 4k' -c 'write -P 3 3M 1000' in.qcow >/dev/null
qemu-img create -q -f raw in.raw 3000000
qemu-io -f raw -c 'write -P 4 100000 500000' in.raw >/dev/null

for src in in.qcow in.raw; do
    for ops in "" "bs=64k" "bs=64k skip=2 count=5" "bs=1000" "bs=1000 count=1k" \
        "bs=4k skip=3" "count=3 bs=1M" "bs=1M skip=1" "bs=64k skip=1000"; do
        # shellcheck disable=SC2086
        expect_rc 0 "$Q" dd if="$src" of=k.raw $ops
        expect_out ""
        cp err k.err
        # shellcheck disable=SC2086
        qemu-img dd if="$src" of=q.raw $ops 2>q.err || fail "qemu-img dd $ops"
        cmp k.raw q.raw || fail "dd $src $ops: raw outputs differ"
        [ "$(stat -c %s k.raw)" -eq "$(stat -c %s q.raw)" ] || fail "dd $src $ops: size"
        grep -v "^WARNING\|^  " q.err | sed 's/^qemu-img: //' >q.msg || true
        sed 's/^qcowkit: //' k.err | diff - q.msg || fail "dd $src $ops: messages"
        [ -s q.raw ] || continue
        # shellcheck disable=SC2086
        expect_rc 0 "$Q" dd -O qcow if="$src" of=k.qcow $ops
        qemu-img compare -q -F raw k.qcow q.raw || fail "dd -O qcow $src $ops"
        expect_rc 0 "$Q" check k.qcow
        qemu-img info k.qcow | grep -q "^file format: qcow$" || fail "-O qcow format"
    done
done
# -f and -U; the output is sparse (zero blocks are not written).
expect_rc 0 "$Q" dd -f raw -U if=in.raw of=k.qcow -O qcow bs=64k
qemu-img compare -q -f qcow -F raw k.qcow in.raw || fail "dd -f raw -U"
expect_rc 0 "$Q" map --output=json k.qcow
grep -q '"start": 0, "length": 65536, "depth": 0, "present": false' out ||
    fail "a zero block was written"

# Errors, as qemu-img.
for ops in "if=in.raw" "if=in.raw of=x bs=0" "if=in.raw of=x bs=1x" "if=in.raw of=x foo" \
    "if=in.raw of=x foo=1" "if=in.raw of=x count=-1" "if=in.raw of=x bs=3000000000" \
    "-O foo if=in.raw of=x" "-O qcow if=in.raw of=x skip=10000" "if=nothere of=x"; do
    # shellcheck disable=SC2086
    expect_rc 1 "$Q" dd $ops
    # shellcheck disable=SC2086
    qemu-img dd $ops 2>q.err && fail "qemu-img dd $ops succeeded"
    case $ops in
    *nothere*) grep -q "nothere" err || fail "dd missing input: $(cat err)" ;;
    *) diff <(sed 's/^qcowkit: //' err) <(grep -v "^WARNING\|^  " q.err | sed 's/^qemu-img: //') ||
        fail "dd $ops: messages differ" ;;
    esac
done
echo ok
