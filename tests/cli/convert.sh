#!/bin/bash
# qcowkit convert: formats, sparseness, compression, backing files.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir

"$Q" create -q -f qcow src.qcow 4M
"$Q" io -c 'write -P 1 0 64k' -c 'write -P 2 1M 4k' -c 'write -P 0 2M 64k' \
    -c 'write -P 3 3M 100' src.qcow >/dev/null

# Default output format is raw; zero areas stay holes.
expect_rc 0 "$Q" convert src.qcow out.raw
expect_out ""
[ "$(stat -c %s out.raw)" -eq 4194304 ] || fail "raw size"
expect_rc 0 "$Q" compare src.qcow out.raw
[ "$(stat -c %b out.raw)" -lt 1000 ] || fail "raw output is not sparse"

expect_rc 0 "$Q" convert -O qcow src.qcow out.qcow
expect_rc 0 "$Q" compare src.qcow out.qcow
expect_rc 0 "$Q" map --output=json out.qcow
! grep -q '"start": 2097152, "length": 65536, "depth": 0, "present": true' out ||
    fail "zero clusters were written"

# -S 0 allocates everything.
expect_rc 0 "$Q" convert -S 0 -O qcow src.qcow full.qcow
expect_rc 0 "$Q" map --output=json full.qcow
[ "$(grep -c '"present": false' out || true)" -eq 0 ] || fail "-S 0"
expect_rc 1 "$Q" convert -S 1000 -O qcow src.qcow x.qcow
expect_err "Invalid buffer size for sparse output"

# Compression.
expect_rc 0 "$Q" convert -c -O qcow src.qcow comp.qcow
expect_rc 0 "$Q" compare src.qcow comp.qcow
expect_rc 0 "$Q" map --output=json comp.qcow
grep -q '"start": 0, "length": 65536, "depth": 0, "present": true, "zero": false, "data": true}' out ||
    fail "not compressed"
[ "$(stat -c %s comp.qcow)" -lt "$(stat -c %s out.qcow)" ] || fail "-c did not shrink"
expect_rc 1 "$Q" convert -c -O raw src.qcow x.raw
expect_err "Compression not supported"

# A backing file for the target: only differing clusters are written.
"$Q" create -q -f qcow -b src.qcow -F qcow over.qcow
"$Q" io -c 'write -P 9 1M 512' over.qcow >/dev/null
expect_rc 0 "$Q" convert -O qcow -B src.qcow -F qcow over.qcow new.qcow
expect_rc 0 "$Q" compare over.qcow new.qcow
expect_rc 0 "$Q" info new.qcow
grep -q "^backing file: src.qcow$" out || fail "-B"
expect_rc 0 "$Q" map --output=json new.qcow
[ "$(grep -c '"depth": 0, "present": true' out)" -eq 1 ] ||
    fail "-B wrote more than the changed cluster: $(cat out)"
expect_rc 1 "$Q" convert -O qcow -B src.qcow over.qcow x.qcow
expect_err "requires explicit backing format"

# Flattening a chain; -o cluster_size; overwriting; -n.
expect_rc 0 "$Q" convert -O qcow -o cluster_size=64k over.qcow flat.qcow
expect_rc 0 "$Q" compare over.qcow flat.qcow
expect_rc 0 "$Q" info flat.qcow
grep -q "^cluster_size: 65536$" out || fail "cluster_size"
! grep -q "^backing file" out || fail "flattened image has a backing file"
expect_rc 0 "$Q" convert -O qcow src.qcow flat.qcow
expect_rc 0 "$Q" compare src.qcow flat.qcow
"$Q" create -q -f qcow pre.qcow 4M
"$Q" io -c 'write -P 7 0 4M' pre.qcow >/dev/null
expect_rc 0 "$Q" convert -n -O qcow src.qcow pre.qcow
expect_rc 0 "$Q" compare src.qcow pre.qcow

for t in none writeback writethrough directsync unsafe; do
    expect_rc 0 "$Q" convert -t "$t" -O qcow src.qcow t.qcow
done
expect_rc 1 "$Q" convert -t bogus src.qcow x.raw
expect_err "^qcowkit: Invalid cache option: bogus$"

expect_rc 0 "$Q" convert -p -O qcow src.qcow p.qcow
grep -q "(100.00/100%)" out || fail "progress"
expect_rc 0 "$Q" convert -q -p -O qcow src.qcow p.qcow
expect_out ""

expect_rc 1 "$Q" convert missing.qcow x.raw
expect_err "^qcowkit: missing.qcow: No such file or directory$"
expect_rc 1 "$Q" convert -O vdi src.qcow x.vdi
expect_err "^qcowkit: Unknown file format 'vdi'$"
expect_rc 1 "$Q" convert src.qcow
expect_err "Must specify image file name"
# -o size=N is checked, then ignored, as qemu-img convert does: the target
# takes the source's size.  With -n, -o is refused.
expect_rc 0 "$Q" convert -O qcow -o size=1M src.qcow x.qcow
expect_rc 0 "$Q" info --output=json x.qcow
grep -q '"virtual-size": 4194304,' out || fail "-o size changed the size: $(cat out)"
expect_rc 0 "$Q" compare src.qcow x.qcow
expect_rc 1 "$Q" convert -O qcow -o size=bogus src.qcow x.qcow
expect_err "^qcowkit: Parameter 'size' expects a non-negative number below 2\^64$"
expect_rc 1 "$Q" convert -n -O qcow -o size=1M src.qcow x.qcow
expect_err "^qcowkit: -o has no effect when skipping image creation$"

if have qemu-img; then
    qemu-img create -q -f qcow q.qcow 4M
    qemu-io -c 'write -P 1 0 64k' -c 'write -P 2 1M 4k' -c 'write -z 2M 64k' q.qcow >/dev/null
    for args in "-O qcow" "-O raw" "-O qcow -S 512" "-O qcow -S 0"; do
        rm -f mine theirs
        # shellcheck disable=SC2086
        "$Q" convert $args q.qcow mine
        # shellcheck disable=SC2086
        qemu-img convert $args q.qcow theirs
        cmp mine theirs || fail "convert $args differs from qemu-img"
    done
    # -o size: the same image (of the source's size) or the same refusal.
    for fmt in qcow raw; do
        for size in 1M 64M 0 0x200 bogus 1.5 -1 16E; do
            rm -f mine theirs
            qrc=0 krc=0
            qemu-img convert -O $fmt -o size=$size q.qcow theirs 2>q.err || qrc=$?
            "$Q" convert -O $fmt -o size=$size q.qcow mine 2>k.err || krc=$?
            [ "$qrc" = "$krc" ] || fail "-O $fmt -o size=$size: exit $krc, qemu-img $qrc"
            if [ "$qrc" = 0 ]; then
                cmp mine theirs || fail "-O $fmt -o size=$size differs from qemu-img"
            else
                [ "$(sed 's/^qcowkit: //' k.err)" == "$(head -n1 q.err | sed 's/^qemu-img: //')" ] ||
                    fail "-o size=$size: '$(cat k.err)', qemu-img '$(cat q.err)'"
            fi
        done
    done
    qemu-img create -q -f raw theirs 4M
    qrc=0
    qemu-img convert -n -O raw -o size=1M q.qcow theirs 2>q.err || qrc=$?
    expect_rc "$qrc" "$Q" convert -n -O raw -o size=1M q.qcow theirs
    [ "$(sed 's/^qcowkit: //' err)" == "$(sed 's/^qemu-img: //' q.err)" ] ||
        fail "-n -o: '$(cat err)', qemu-img '$(cat q.err)'"
fi
echo ok
