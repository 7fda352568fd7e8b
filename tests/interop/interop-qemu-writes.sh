#!/usr/bin/env bash
# interop-qemu-writes: images written by QEMU (qemu-img create/convert,
# qemu-io write) read identically by qcowkit.
#
# Every case builds an image with QEMU only, then `same_reading` converts
# it to raw with both `qemu-img convert -O raw` and `qcowkit convert -O raw`
# and cmp's the two; where the expected contents are known independently
# (the same writes applied by qemu-io to a raw file), QEMU's reading is
# checked against that too.  Some cases also read through `qcowkit io -r -c
# 'read -P ...'`.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires qemu-img qemu-io python3 cmp
requires_qcowkit
make_tmpdir
use_unsafe_qemu_io

# writes IMG FMT SEED COUNT [MAXSHIFT]: apply a fixed-seed list of writes
# (1 byte .. 2^MAXSHIFT bytes, unaligned) with qemu-io to IMG (format FMT);
# the list is kept in IMG.writes so that a reference can replay it.
writes() {
    local img=$1 fmt=$2 seed=$3 count=$4 maxshift=${5:-22} size
    size=$(vsize "$img")
    gen_writes "$seed" "$size" "$count" "$maxshift" >"$img.writes"
    io_args "$img.writes"
    run qemu-io -f "$fmt" "${IO_ARGS[@]}" "$img"
}

# replay LIST RAW: apply the writes of LIST to the raw file RAW.
replay() {
    io_args "$1"
    run qemu-io -f raw "${IO_ARGS[@]}" "$2"
}

# A qcow image without backing file, default geometry (4 KiB clusters,
# 512-entry L2 tables: one table per 2 MiB), writes of every size at
# unaligned offsets, spanning cluster and L2 boundaries.
case_plain() {
    run qemu-img create -f qcow img.qcow 24M
    run qemu-img create -f raw ref.raw 24M
    writes img.qcow qcow 42 60
    # Explicit boundary cases: single bytes at both ends, one write over
    # an L2 boundary (2 MiB), one covering several L2 tables.
    run qemu-io -c 'write -P 0x5a 0 1' -c 'write -P 0xa5 25165823 1' \
        -c 'write -P 0x3c 2097000 400' -c 'write -P 0x77 6291000 5000000' \
        img.qcow
    cat img.qcow.writes >all.writes
    printf '%s\n' '0 1 0x5a' '25165823 1 0xa5' '2097000 400 0x3c' \
        '6291000 5000000 0x77' >>all.writes
    replay all.writes ref.raw
    same_reading img.qcow ref.raw
    # The same bytes through qcowkit io.
    run "$QCOWKIT" io -f qcow -r -c 'read -P 0x5a 0 1' \
        -c 'read -P 0xa5 25165823 1' -c 'read -P 0x3c 2097000 400' \
        -c 'read -P 0x77 6291000 5000000' img.qcow
}

# An empty image: everything reads as zeros.
case_empty() {
    run qemu-img create -f qcow img.qcow 5M
    truncate -s 5M ref.raw
    same_reading img.qcow ref.raw
    run "$QCOWKIT" io -r -c 'read -P 0 0 5M' img.qcow
}

# Overlay on a raw backing file (512-byte clusters, 4096-entry L2 tables).
case_raw_backing() {
    make_data base.raw $((8 << 20)) 1
    run qemu-img create -f qcow -b base.raw -F raw top.qcow
    cp base.raw ref.raw
    writes top.qcow qcow 7 40
    replay top.qcow.writes ref.raw
    same_reading top.qcow ref.raw
    # The backing file itself is unchanged.
    same_reading base.raw
}

# Overlay on a qcow backing file.
case_qcow_backing() {
    run qemu-img create -f qcow base.qcow 8M
    writes base.qcow qcow 11 30
    run qemu-img create -f qcow -b base.qcow -F qcow top.qcow
    writes top.qcow qcow 12 30
    truncate -s 8M ref.raw
    replay base.qcow.writes ref.raw
    replay top.qcow.writes ref.raw
    same_reading base.qcow
    same_reading top.qcow ref.raw
}

# Chains of depth 3: raw <- qcow <- qcow <- qcow and qcow <- qcow <- qcow
# <- qcow, with writes at every level, relative backing names, and the
# chain opened from another folder.
case_chain3() {
    make_data base.raw $((4 << 20)) 2
    run qemu-img create -f qcow -b base.raw -F raw l1.qcow
    run qemu-img create -f qcow -b l1.qcow -F qcow l2.qcow
    run qemu-img create -f qcow -b l2.qcow -F qcow l3.qcow
    cp base.raw ref.raw
    local i=20 l
    for l in l1 l2 l3; do
        writes $l.qcow qcow $((i++)) 15 18
        replay $l.qcow.writes ref.raw
    done
    same_reading l3.qcow ref.raw
    mkdir -p sub && cd sub
    same_reading ../l3.qcow ../ref.raw
    cd ..

    run qemu-img create -f qcow q0.qcow 3M
    run qemu-img create -f qcow -b q0.qcow -F qcow q1.qcow
    run qemu-img create -f qcow -b "$PWD/q1.qcow" -F qcow q2.qcow
    run qemu-img create -f qcow -b q2.qcow -F qcow q3.qcow
    truncate -s 3M ref3.raw
    i=30
    for l in q0 q1 q2 q3; do
        writes $l.qcow qcow $((i++)) 12 19
        replay $l.qcow.writes ref3.raw
    done
    same_reading q3.qcow ref3.raw
}

# A backing file shorter than the overlay: the rest reads as zeros.
case_short_backing() {
    make_data base.raw $((1 << 20)) 3
    run qemu-img create -f qcow -b base.raw -F raw top.qcow 3M
    cp base.raw ref.raw
    truncate -s 3M ref.raw
    run qemu-io -c 'write -P 0x42 1048000 1000' top.qcow
    run qemu-io -f raw -c 'write -P 0x42 1048000 1000' ref.raw
    same_reading top.qcow ref.raw
    run "$QCOWKIT" io -r -c 'read -P 0 1049000 2096152' top.qcow
}

# Compressed images made by qemu-img convert -c.
case_qemu_convert_c() {
    make_data src.raw $((6 << 20)) 4
    qemu_compress src.raw c.qcow
    same_reading c.qcow src.raw
    # An odd size: the last cluster is partial.
    make_data odd.raw $(((3 << 20) + 1536)) 5
    qemu_compress odd.raw odd.qcow
    same_reading odd.qcow odd.raw
    # Compressed from a qcow chain (flattened).
    run qemu-img create -f qcow -b src.raw -F raw ovl.qcow
    writes ovl.qcow qcow 50 20 20
    qemu_raw ovl.qcow ovl.raw
    qemu_compress ovl.qcow ovlc.qcow
    same_reading ovlc.qcow ovl.raw
}

# Compressed clusters written by qemu-io write -c, then partly
# overwritten (QEMU decompresses them into normal clusters).
case_qemu_io_compressed() {
    run qemu-img create -f qcow img.qcow $(((1 << 20) + 512))
    truncate -s $(((1 << 20) + 512)) ref.raw
    local args=() ref=() c
    for c in 0 1 2 3 7 100 200 255; do
        args+=(-c "write -c -P 0x$((c % 9 + 1))$((c % 7)) $((c * 4096)) 4096")
        ref+=(-c "write -P 0x$((c % 9 + 1))$((c % 7)) $((c * 4096)) 4096")
    done
    # Neighbouring clusters (QEMU takes one cluster per compressed write),
    # and the partial last cluster.
    args+=(-c 'write -c -P 0x66 40960 4096' -c 'write -c -P 0x66 45056 4096'
        -c 'write -c -P 0x67 1048576 512')
    ref+=(-c 'write -P 0x66 40960 8192' -c 'write -P 0x67 1048576 512')
    run qemu-io "${args[@]}" img.qcow
    run qemu-io -f raw "${ref[@]}" ref.raw
    same_reading img.qcow ref.raw
    # Overwrite parts of compressed clusters.
    args=(-c 'write -P 0x11 5 1' -c 'write -P 0x12 4095 2'
        -c 'write -P 0x13 819300 1000' -c 'write -P 0x14 1048577 100')
    run qemu-io "${args[@]}" img.qcow
    run qemu-io -f raw "${args[@]}" ref.raw
    same_reading img.qcow ref.raw
}

# Odd virtual sizes (qemu-img rounds them up to 512 bytes), writes at the
# very end, and sizes right at L2-table boundaries.
case_odd_sizes() {
    local s
    for s in 1 511 513 5000 $(((2 << 20) - 512)) $((2 << 20)) \
        $(((2 << 20) + 512)) $(((64 << 20) + 7)); do
        rm -f img.qcow ref.raw
        run qemu-img create -f qcow img.qcow "$s"
        local vs
        vs=$(vsize img.qcow)
        truncate -s "$vs" ref.raw
        run qemu-io -c "write -P 0x99 $((vs - 1)) 1" -c "write -P 0x98 0 1" \
            img.qcow
        run qemu-io -f raw -c "write -P 0x99 $((vs - 1)) 1" \
            -c "write -P 0x98 0 1" ref.raw
        same_reading img.qcow ref.raw
    done
    # An odd-sized overlay on an odd-sized raw backing file.
    make_data base.raw 1000448 6
    run qemu-img create -f qcow -b base.raw -F raw top.qcow 1000448
    cp base.raw ref2.raw
    writes top.qcow qcow 60 20 19
    replay top.qcow.writes ref2.raw
    same_reading top.qcow ref2.raw
}

# Offsets past 4 GiB (a 9 GiB image; the reference is a sparse raw file
# and is compared with `qcowkit compare` and qcowkit io reads, not cmp).
case_large() {
    local size=$((9 << 30))
    run qemu-img create -f qcow img.qcow "$size"
    truncate -s "$size" ref.raw
    local args=(-c 'write -P 0x12 4294963200 8192' -c 'write -P 0x11 4294967295 2'
        -c 'write -P 0x13 8589934591 1' -c "write -P 0x14 $((size - 3)) 3"
        -c 'write -P 0x15 6442450000 3000000' -c 'write -P 0x16 2147483647 2')
    run qemu-io "${args[@]}" -c 'write -c -P 0x17 7516192768 4096' img.qcow
    run qemu-io -f raw "${args[@]}" -c 'write -P 0x17 7516192768 4096' ref.raw
    qemu_same img.qcow ref.raw
    run "$QCOWKIT" compare img.qcow ref.raw
    run "$QCOWKIT" io -r -c 'read -P 0x12 4294963200 4095' \
        -c 'read -P 0x11 4294967295 2' -c 'read -P 0x12 4294967297 4095' \
        -c 'read -P 0x13 8589934591 1' -c "read -P 0x14 $((size - 3)) 3" \
        -c 'read -P 0x15 6442450000 3000000' -c 'read -P 0 6445450000 1000' \
        -c 'read -P 0x16 2147483647 2' -c 'read -P 0x17 7516192768 4096' \
        -c 'read -P 0 7516196864 1' img.qcow
}

# A compressed image (qemu-img convert -c) as backing file, overlays
# written by QEMU over its compressed clusters.
case_compressed_backing() {
    make_data src.raw $((4 << 20)) 12
    qemu_compress src.raw base.qcow
    run qemu-img create -f qcow -b base.qcow -F qcow top.qcow
    cp src.raw ref.raw
    writes top.qcow qcow 13 30 20
    replay top.qcow.writes ref.raw
    same_reading base.qcow src.raw
    same_reading top.qcow ref.raw
}

# Uncompressed qemu-img convert -O qcow, from raw and from a chain.
case_qemu_convert() {
    make_data src.raw $(((5 << 20) + 512)) 14
    run qemu-img convert -O qcow src.raw c.qcow
    same_reading c.qcow src.raw
    run qemu-img create -f qcow -b src.raw -F raw ovl.qcow
    writes ovl.qcow qcow 15 20 20
    qemu_raw ovl.qcow ovl.raw
    run qemu-img convert -O qcow ovl.qcow flat.qcow
    same_reading flat.qcow ovl.raw
}

run_case plain case_plain
run_case empty case_empty
run_case raw-backing case_raw_backing
run_case qcow-backing case_qcow_backing
run_case chain3 case_chain3
run_case short-backing case_short_backing
run_case qemu-convert-c case_qemu_convert_c
run_case qemu-io-compressed case_qemu_io_compressed
run_case odd-sizes case_odd_sizes
run_case large case_large
run_case compressed-backing case_compressed_backing
run_case qemu-convert case_qemu_convert
finish
