#!/usr/bin/env bash
# interop-qcowkit-writes: images written by qcowkit read identically by
# QEMU.
#
# Every case creates an image with `qcowkit create`, writes it with
# `qcowkit io -c 'write ...'` (a fixed-seed list of writes from 1 byte to
# several MiB at unaligned offsets), applies the same writes with qemu-io
# to a raw reference image, and then requires `qemu-img compare IMG REF` to
# say "Images are identical." and `qemu-img convert -O raw IMG` to be
# byte-identical to REF.
#
# Compressed writes are ordinary writes on the reference.  Two things that
# are checked here cannot be done by QEMU itself (so the cases
# "compressed" and "mixed" fail when QCOWKIT is tests/interop/qemu-shim.sh):
# a compressed write of several clusters in one request (qemu-io: EINVAL),
# and a compressed write over an already allocated normal cluster (QEMU
# 7.2 writes the compressed bytes into the cluster but leaves the L2 entry
# uncompressed, so the cluster then reads back as garbage).
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires qemu-img qemu-io python3 cmp
requires_qcowkit
make_tmpdir
use_unsafe_qemu_io

# qk_writes IMG LIST [PARTS]: apply the writes of LIST with qcowkit io, in
# PARTS separate runs (default 1) so that the image is reopened between
# them.
qk_writes() {
    local img=$1 list=$2 parts=${3:-1} n i
    n=$(wc -l <"$list")
    for ((i = 0; i < parts; i++)); do
        sed -n "$((i * n / parts + 1)),$(((i + 1) * n / parts))p" "$list" >"$list.part"
        [ -s "$list.part" ] || continue
        io_args "$list.part"
        run "$QCOWKIT" io -f qcow "${IO_ARGS[@]}" "$img"
    done
    rm -f "$list.part"
}

# ref_writes LIST RAW: apply LIST (compressed writes as plain ones) to RAW.
ref_writes() {
    io_args "$1" plain
    run qemu-io -f raw "${IO_ARGS[@]}" "$2"
}

# check IMG REF: QEMU reads IMG exactly as the raw REF.
check() {
    qemu_same "$1" "$2"
    qemu_raw "$1" "$1.qemu.raw"
    same_files "$2" "$1.qemu.raw" "$1: qemu-img convert -O raw vs reference"
    rm -f "$1.qemu.raw"
}

# compressed_extents IMG: how many extents `qemu-img map` reports as data
# stored in IMG without an offset (compressed clusters).
compressed_extents() {
    qemu-img map --output=json "$1" | python3 -c '
import json, sys
print(sum(1 for e in json.load(sys.stdin)
          if e["depth"] == 0 and e["data"] and "offset" not in e))'
}

# gen_mixed SEED SIZE COUNT CLUSTER: like gen_writes, but about a third of
# the writes are compressed writes ("c") of 1..4 whole clusters.
gen_mixed() {
    local seed=$1 size=$2 count=$3 cl=$4 n off line
    local nclusters=$((size / cl))
    gen_writes "$seed" "$size" "$count" 21 | {
        RANDOM=$((seed + 1))
        while read -r line; do
            if [ $((RANDOM % 3)) -eq 0 ]; then
                n=$((1 + RANDOM % 4))
                off=$(((((RANDOM << 15) | RANDOM) % (nclusters - n + 1)) * cl))
                printf '%d %d 0x%02x c\n' "$off" $((n * cl)) $((1 + RANDOM % 255))
            else
                echo "$line"
            fi
        done
    }
}

# No backing file, default geometry; three reopenings.
case_plain() {
    local size=$(((24 << 20) + 512))
    run "$QCOWKIT" create -f qcow img.qcow "$size"
    truncate -s "$size" ref.raw
    gen_writes 42 "$size" 60 >w.list
    printf '%s\n' "0 1 0x5a" "$((size - 1)) 1 0xa5" "2097000 400 0x3c" \
        "6291000 5000000 0x77" >>w.list
    qk_writes img.qcow w.list 3
    ref_writes w.list ref.raw
    check img.qcow ref.raw
}

# Writes in many small qcowkit io runs (one write each) over an image.
case_reopen() {
    local size=$((3 << 20))
    run "$QCOWKIT" create -f qcow img.qcow "$size"
    truncate -s "$size" ref.raw
    gen_writes 43 "$size" 12 20 >w.list
    qk_writes img.qcow w.list 12
    ref_writes w.list ref.raw
    check img.qcow ref.raw
}

# Overlay on a raw backing file (512-byte clusters).
case_raw_backing() {
    make_data base.raw $((8 << 20)) 1
    run "$QCOWKIT" create -f qcow -b base.raw -F raw top.qcow $((8 << 20))
    cp base.raw ref.raw
    gen_writes 7 $((8 << 20)) 40 >w.list
    qk_writes top.qcow w.list 2
    ref_writes w.list ref.raw
    check top.qcow ref.raw
    cmp -s base.raw ref.raw && fail "test error: no write changed anything"
    # The backing file was left alone.
    make_data base2.raw $((8 << 20)) 1
    same_files base.raw base2.raw "backing file modified"
}

# Overlay on a qcow backing file written by QEMU, and a depth-3 chain of
# images made and written by qcowkit, over a raw base.
case_qcow_backing() {
    run qemu-img create -f qcow base.qcow 8M
    gen_writes 11 $((8 << 20)) 30 >b.list
    io_args b.list
    run qemu-io "${IO_ARGS[@]}" base.qcow
    run "$QCOWKIT" create -f qcow -b base.qcow -F qcow top.qcow 8M
    truncate -s 8M ref.raw
    ref_writes b.list ref.raw
    gen_writes 12 $((8 << 20)) 30 >t.list
    qk_writes top.qcow t.list
    ref_writes t.list ref.raw
    check top.qcow ref.raw

    make_data r0.raw $((4 << 20)) 2
    cp r0.raw ref3.raw
    run "$QCOWKIT" create -f qcow -b r0.raw -F raw c1.qcow $((4 << 20))
    run "$QCOWKIT" create -f qcow -b c1.qcow -F qcow c2.qcow $((4 << 20))
    run "$QCOWKIT" create -f qcow -b "$PWD/c2.qcow" -F qcow c3.qcow $((4 << 20))
    local i=20 l
    for l in c1 c2 c3; do
        gen_writes $((i++)) $((4 << 20)) 15 20 >$l.list
        qk_writes $l.qcow $l.list
        ref_writes $l.list ref3.raw
    done
    check c3.qcow ref3.raw
}

# Compressed writes: whole clusters, several clusters per request, the
# partial last cluster, over unallocated, normal and compressed clusters,
# then ordinary writes over compressed clusters.
case_compressed() {
    local size=$(((4 << 20) + 512)) cl=4096
    run "$QCOWKIT" create -f qcow img.qcow "$size"
    truncate -s "$size" ref.raw
    {
        # over unallocated clusters, one at a time and several at once
        echo "0 $cl 0x11 c"
        echo "$cl $cl 0x12 c"
        echo "$((100 * cl)) $((16 * cl)) 0x13 c"
        echo "$((512 * cl)) $cl 0x14 c" # first cluster of the 2nd L2 table
        echo "$((4 << 20)) 512 0x15 c"  # the partial last cluster
        # over normal clusters
        echo "$((20 * cl)) $((4 * cl)) 0x21"
        echo "$((20 * cl)) $((2 * cl)) 0x22 c"
        echo "$((23 * cl)) $cl 0x23 c"
        # over compressed clusters
        echo "$cl $cl 0x31 c"
        echo "$((100 * cl)) $((2 * cl)) 0x32 c"
        # ordinary writes over compressed clusters: 1 byte, unaligned,
        # straddling a compressed and an unallocated cluster, whole cluster
        echo "5 1 0x41"
        echo "$((cl - 3)) 7 0x42"
        echo "$((115 * cl + 4000)) 1000 0x43"
        echo "$((102 * cl)) $cl 0x44"
        echo "$(((4 << 20) + 100)) 10 0x45"
        # compressed again over what is now normal
        echo "0 $cl 0x51 c"
    } >w.list
    qk_writes img.qcow w.list 2
    ref_writes w.list ref.raw
    check img.qcow ref.raw
    [ "$(compressed_extents img.qcow)" -gt 0 ] ||
        fail "qemu-img map shows no compressed cluster after write -c"
    # The default pattern of write -c, as in qemu-io, is 0xcd.
    run "$QCOWKIT" io -f qcow -c "write -c $((200 * cl)) $cl" img.qcow
    run qemu-io -f raw -c "write -P 0xcd $((200 * cl)) $cl" ref.raw
    check img.qcow ref.raw
}

# Compressed writes on an overlay (512-byte clusters).
case_compressed_backing() {
    make_data base.raw $((2 << 20)) 3
    run "$QCOWKIT" create -f qcow -b base.raw -F raw top.qcow $((2 << 20))
    cp base.raw ref.raw
    {
        echo "0 512 0x61 c"
        echo "512 1536 0x62 c"
        echo "$((1 << 20)) 8192 0x63 c"
        echo "1000 10 0x64"
        echo "$(((1 << 20) + 700)) 2000 0x65"
        echo "$(((2 << 20) - 512)) 512 0x66 c"
    } >w.list
    qk_writes top.qcow w.list
    ref_writes w.list ref.raw
    check top.qcow ref.raw
}

# A fixed-seed mix of ordinary and compressed writes, without and with a
# backing file.
case_mixed() {
    local size=$((6 << 20))
    run "$QCOWKIT" create -f qcow img.qcow "$size"
    truncate -s "$size" ref.raw
    gen_mixed 99 "$size" 60 4096 >w.list
    qk_writes img.qcow w.list 3
    ref_writes w.list ref.raw
    check img.qcow ref.raw

    make_data base.raw "$size" 4
    run "$QCOWKIT" create -f qcow -b base.raw -F raw top.qcow "$size"
    cp base.raw ref2.raw
    gen_mixed 100 "$size" 60 512 >w2.list
    qk_writes top.qcow w2.list 3
    ref_writes w2.list ref2.raw
    check top.qcow ref2.raw
}

# Offsets past 4 GiB (a 9 GiB image against a sparse raw reference, with
# qemu-img compare only: a full cmp would read 9 GiB).
case_large() {
    local size=$((9 << 30))
    run "$QCOWKIT" create -f qcow img.qcow "$size"
    truncate -s "$size" ref.raw
    {
        echo "4294963200 8192 0x12"
        echo "4294967295 2 0x11"
        echo "8589934591 1 0x13"
        echo "$((size - 3)) 3 0x14"
        echo "6442450000 3000000 0x15"
        echo "2147483647 2 0x16"
        echo "7516192768 8192 0x17 c"
        echo "$((size - 4096)) 4096 0x18 c"
    } >w.list
    qk_writes img.qcow w.list 2
    ref_writes w.list ref.raw
    qemu_same img.qcow ref.raw
    run qemu-io -r -c 'read -P 0x12 4294963200 4095' \
        -c 'read -P 0x11 4294967295 2' -c 'read -P 0x12 4294967297 4095' \
        -c 'read -P 0x17 7516192768 8192' -c 'read -P 0 7516200960 1' \
        -c "read -P 0x18 $((size - 4096)) 4093" img.qcow
}

# QEMU and qcowkit take turns writing the same image (each reopening it
# after the other has appended clusters, compressed data, L2 tables).
case_alternate() {
    local size=$((6 << 20)) r
    run "$QCOWKIT" create -f qcow img.qcow "$size"
    truncate -s "$size" ref.raw
    for r in 1 2 3 4; do
        gen_mixed $((200 + r)) "$size" 10 4096 >k$r.list
        qk_writes img.qcow k$r.list
        ref_writes k$r.list ref.raw
        # QEMU: ordinary writes only (see the top of this file).
        gen_writes $((300 + r)) "$size" 10 21 >q$r.list
        io_args q$r.list
        run qemu-io -f qcow "${IO_ARGS[@]}" img.qcow
        ref_writes q$r.list ref.raw
    done
    check img.qcow ref.raw
    same_reading img.qcow ref.raw
}

# An overlay opened from another folder (the relative backing name is
# resolved against the overlay's folder), over a compressed qcow base that
# QEMU made.
case_other_folder() {
    make_data src.raw $((3 << 20)) 13
    qemu_compress src.raw base.qcow
    run "$QCOWKIT" create -f qcow -b base.qcow -F qcow top.qcow $((3 << 20))
    cp src.raw ref.raw
    gen_writes 14 $((3 << 20)) 30 20 >w.list
    mkdir sub
    (cd sub && qk_writes ../top.qcow ../w.list 2)
    ref_writes w.list ref.raw
    check top.qcow ref.raw
}

# qcowkit convert -O qcow (not compressed), from raw and from a chain.
case_convert() {
    make_data src.raw $(((5 << 20) + 512)) 15
    rm -f c.qcow
    run "$QCOWKIT" convert -O qcow src.raw c.qcow
    check c.qcow src.raw
    run qemu-img create -f qcow -b src.raw -F raw ovl.qcow
    gen_writes 16 $((5 << 20)) 20 20 >w.list
    io_args w.list
    run qemu-io "${IO_ARGS[@]}" ovl.qcow
    qemu_raw ovl.qcow ovl.raw
    run "$QCOWKIT" convert -f qcow -O qcow ovl.qcow flat.qcow
    check flat.qcow ovl.raw
    # With -B: a new overlay on the same backing file.  (Which clusters it
    # stores may differ from qemu-img's; what it reads as may not.)
    run "$QCOWKIT" convert -O qcow -B src.raw -F raw ovl.qcow newovl.qcow
    check newovl.qcow ovl.raw
    [ "$(qemu-img info --output=json newovl.qcow | python3 -c \
        'import json,sys; print(json.load(sys.stdin).get("backing-filename"))')" = src.raw ] ||
        fail "convert -B: the output's backing file is not src.raw"
}

run_case plain case_plain
run_case reopen case_reopen
run_case raw-backing case_raw_backing
run_case qcow-backing case_qcow_backing
run_case compressed case_compressed
run_case compressed-backing case_compressed_backing
run_case mixed case_mixed
run_case large case_large
run_case alternate case_alternate
run_case other-folder case_other_folder
run_case convert case_convert
finish
