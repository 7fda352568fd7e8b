#!/usr/bin/env bash
# interop-create: `qcowkit create -f qcow` makes the same file as
# `qemu-img create -f qcow` (cmp), for many sizes, without and with a
# backing file (relative and absolute names); and images of the extreme
# geometries that QEMU cannot create (cluster_bits/l2_bits 9/6, 9/13, 16/6,
# 16/13), crafted here with python3 or made by `qcowkit create -o
# cluster_size=N`, read the same in both tools after writes by either.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires qemu-img qemu-io python3 cmp
requires_qcowkit
make_tmpdir
use_unsafe_qemu_io

# craft FILE SIZE CLUSTER_BITS L2_BITS [BACKING]: write an empty qcow
# image laid out as QEMU's qcow_co_create() lays it out (header, backing
# name, L1 table at the next multiple of 8, the table zeroed in whole
# 512-byte sectors), but with any geometry.
craft() {
    python3 - "$@" <<'PY'
import struct, sys
path, size, cb, l2b = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
backing = sys.argv[5].encode() if len(sys.argv) > 5 else b""
hsize = 48 + len(backing)
l1_off = (hsize + 7) & ~7
shift = cb + l2b
l1_size = (size + (1 << shift) - 1) >> shift
hdr = struct.pack(">IIQIIQBBHIQ", 0x514649FB, 1, 48 if backing else 0,
                  len(backing), 0, size, cb, l2b, 0, 0, l1_off)
sectors = (l1_size * 8 + 511) // 512
with open(path, "wb") as f:
    f.write(hdr + backing)
    f.write(bytes(l1_off - hsize + sectors * 512))
PY
}

# geometry FILE: print "cluster_bits l2_bits" from a qcow header.
geometry() {
    python3 -c '
import sys
h = open(sys.argv[1], "rb").read(48)
print(h[32], h[33])' "$1"
}

# create_same NAME QEMU-IMG-CREATE-ARGS...: qemu-img create -f qcow and
# qcowkit create -f qcow with the same arguments (ending with the file
# name NAME, given without suffix) must give identical files.
create_same() {
    local name=$1
    shift
    rm -f "$name.q.qcow" "$name.k.qcow"
    run qemu-img create -f qcow "$@" "$name.q.qcow" "${SIZE[@]}"
    run "$QCOWKIT" create -f qcow "$@" "$name.k.qcow" "${SIZE[@]}"
    same_files "$name.q.qcow" "$name.k.qcow" \
        "create -f qcow $* $name ${SIZE[*]}: qemu-img vs qcowkit"
}

SIZES=(1 511 512 513 1M 1048576 $(((1 << 30) + 7)) 100G 4096 2097153)

case_sizes() {
    local s
    for s in "${SIZES[@]}"; do
        SIZE=("$s")
        create_same "s$s"
    done
}

case_backing_relative() {
    run qemu-img create -f raw base.raw 3M
    run qemu-img create -f qcow base.qcow 5M
    local s
    for s in "${SIZES[@]}"; do
        SIZE=("$s")
        create_same "r$s" -b base.raw -F raw
        create_same "q$s" -b base.qcow -F qcow
    done
    # Without a size: the backing file's.
    SIZE=()
    create_same "nosize-raw" -b base.raw -F raw
    create_same "nosize-qcow" -b base.qcow -F qcow
    # In another folder: the name is stored as given and resolved
    # against the new image's folder.
    mkdir sub
    run qemu-img create -f raw sub/other.raw 7M
    create_same "sub/in-sub" -b other.raw -F raw
    create_same "sub/up" -b ../base.raw -F raw
}

case_backing_absolute() {
    run qemu-img create -f raw base.raw 3M
    local s
    for s in "${SIZES[@]}"; do
        SIZE=("$s")
        create_same "a$s" -b "$PWD/base.raw" -F raw
    done
    SIZE=()
    create_same "nosize" -b "$PWD/base.raw" -F raw
    # A long name (the header keeps up to 1023 bytes).
    local d
    d=$PWD/$(printf 'd%.0s' {1..200})/$(printf 'e%.0s' {1..200})
    mkdir -p "$d"
    run qemu-img create -f raw "$d/base.raw" 1M
    SIZE=(2M)
    create_same "long" -b "$d/base.raw" -F raw
}

# The crafting above must itself be right: with QEMU's own geometry it
# makes the same bytes as qemu-img create.
case_craft_selfcheck() {
    run qemu-img create -f qcow q.qcow 100M
    craft c.qcow $((100 << 20)) 12 9
    same_files q.qcow c.qcow "craft 12/9 vs qemu-img create"
    run qemu-img create -f raw base.raw 1M
    run qemu-img create -f qcow -b base.raw -F raw qb.qcow 33M
    craft cb.qcow $((33 << 20)) 9 12 base.raw
    same_files qb.qcow cb.qcow "craft 9/12 with backing vs qemu-img create"
}

# geometry_rw NAME SIZE CB L2B: three copies of an empty image of that
# geometry; A written by qemu-io, B by qcowkit io, C half by each; the
# same writes (ordinary and compressed, around L2-table boundaries, at
# both ends) go to a raw reference; QEMU and qcowkit must both read each
# image as the reference.  QEMU's compressed writes go to unallocated
# clusters only (QEMU 7.2 corrupts an allocated cluster it writes
# compressed); qcowkit also writes one over an allocated cluster (B, C).
geometry_rw() {
    local name=$1 size=$2 cb=$3 l2b=$4
    local cl=$((1 << cb)) span=$((1 << (cb + l2b))) h
    craft "$name.a.qcow" "$size" "$cb" "$l2b"
    cp "$name.a.qcow" "$name.b.qcow"
    cp "$name.a.qcow" "$name.c.qcow"
    [ "$(geometry "$name.a.qcow")" = "$cb $l2b" ] || fail "craft failed"
    {
        echo "$((span + cl)) $cl 0x06 c"        # compressed, 2nd table
        echo "$((3 * cl)) $cl 0x07 c"           # compressed, 1st table
        gen_writes $((cb * 100 + l2b)) "$size" 24 $((cb + l2b < 20 ? cb + l2b : 20))
        echo "0 1 0x01"
        echo "$((size - 1)) 1 0x02"
        echo "$((span - 3)) 7 0x03"             # over the first L2 boundary
        echo "$((span - cl)) $((3 * cl)) 0x04"  # whole clusters across it
        if [ $((2 * span)) -lt "$size" ]; then
            echo "$((2 * span - 1)) 2 0x05"     # over the second
        fi
        echo "$((3 * cl + 5)) 10 0x08"          # into the compressed one
    } >w.list
    # Only qcowkit: compressed over an allocated cluster, then into it.
    printf '%s\n' "0 $cl 0x09 c" "7 3 0x0a" >extra.list
    cat w.list extra.list >all.list

    io_args w.list
    run qemu-io -f qcow "${IO_ARGS[@]}" "$name.a.qcow"
    io_args all.list
    run "$QCOWKIT" io -f qcow "${IO_ARGS[@]}" "$name.b.qcow"
    local n half
    n=$(wc -l <w.list)
    half=$((n / 2))
    head -n "$half" w.list >w1.list
    tail -n +$((half + 1)) all.list >w2.list
    io_args w1.list
    run qemu-io -f qcow "${IO_ARGS[@]}" "$name.c.qcow"
    io_args w2.list
    run "$QCOWKIT" io -f qcow "${IO_ARGS[@]}" "$name.c.qcow"

    truncate -s "$size" "$name.ref-a" "$name.ref"
    io_args w.list plain
    run qemu-io -f raw "${IO_ARGS[@]}" "$name.ref-a"
    io_args all.list plain
    run qemu-io -f raw "${IO_ARGS[@]}" "$name.ref"
    if [ "$size" -le $((64 << 20)) ]; then
        same_reading "$name.a.qcow" "$name.ref-a"
        same_reading "$name.b.qcow" "$name.ref"
        same_reading "$name.c.qcow" "$name.ref"
    else
        # Large and sparse: compare instead of converting to raw and cmp.
        for h in a b c; do
            local r=$name.ref
            [ $h = a ] && r=$name.ref-a
            qemu_same "$name.$h.qcow" "$r"
            run "$QCOWKIT" compare "$name.$h.qcow" "$r"
        done
    fi
}

case_geometry_9_6() { geometry_rw g9-6 $((200 * 1024 + 512)) 9 6; }
case_geometry_9_13() { geometry_rw g9-13 $(((10 << 20) + 512)) 9 13; }
case_geometry_16_6() { geometry_rw g16-6 $(((10 << 20) + 512)) 16 6; }
case_geometry_16_13() { geometry_rw g16-13 $(((520 << 20) + 512)) 16 13; }

# qcowkit create -o cluster_size=N: the header has that cluster size and
# an L2 size QEMU accepts, and the image reads the same in both tools
# after writes by either.
case_cluster_size_option() {
    local n bits g l2b
    for n in 512 1024 16384 65536; do
        bits=$(python3 -c "print(($n).bit_length() - 1)")
        run "$QCOWKIT" create -f qcow -o "cluster_size=$n" k$n.qcow 9M
        g=$(geometry k$n.qcow)
        [ "${g% *}" = "$bits" ] ||
            fail "create -o cluster_size=$n: header cluster_bits ${g% *}, not $bits"
        l2b=${g#* }
        [ "$l2b" -ge 6 ] && [ "$l2b" -le 13 ] ||
            fail "create -o cluster_size=$n: l2_bits $l2b outside QEMU's 6..13"
        truncate -s 9M ref$n.raw
        run qemu-io -c "write -P 0x31 $((n - 1)) 3" -c "write -c -P 0x32 $((2 * n)) $n" \
            k$n.qcow
        run "$QCOWKIT" io -c "write -P 0x33 $((5 * n + 7)) 100000" \
            -c "write -c -P 0x34 $((8 << 20)) $n" k$n.qcow
        run qemu-io -f raw -c "write -P 0x31 $((n - 1)) 3" -c "write -P 0x32 $((2 * n)) $n" \
            -c "write -P 0x33 $((5 * n + 7)) 100000" -c "write -P 0x34 $((8 << 20)) $n" \
            ref$n.raw
        same_reading k$n.qcow ref$n.raw
    done
}

# craft_layout FILE SIZE CB L2B L1_OFFSET [BACKING BACKING_OFFSET]: an
# empty qcow image with the L1 table and backing name where given (not
# necessarily where QEMU puts them) and a non-zero mtime; the file ends
# right after the last of them.
craft_layout() {
    python3 - "$@" <<'PY'
import struct, sys
path, size, cb, l2b, l1off = sys.argv[1], *map(int, sys.argv[2:6])
backing = sys.argv[6].encode() if len(sys.argv) > 6 else b""
boff = int(sys.argv[7]) if len(sys.argv) > 7 else 48
l1_size = (size + (1 << (cb + l2b)) - 1) >> (cb + l2b)
hdr = struct.pack(">IIQIIQBBHIQ", 0x514649FB, 1, boff if backing else 0,
                  len(backing), 12345, size, cb, l2b, 0, 0, l1off)
buf = bytearray(max(l1off + l1_size * 8, boff + len(backing)))
buf[:48] = hdr
buf[boff:boff + len(backing)] = backing
open(path, "wb").write(buf)
PY
}

# Layouts QEMU reads but does not make: a size that is not a multiple of
# 512 (QEMU then sees only whole sectors), an L1 table at an odd offset or
# after a gap, a backing name stored away from the header.  Both tools
# must agree on info, map and contents, after writes by either.  The
# reference REF is the semantic one: the backing file (or zeros) with the
# writes applied.  QEMU's own writes match it except with a backing file
# and clusters over 512 bytes (see case_backing_big_clusters), where only
# "both tools read QEMU's result alike" is required.
case_crafted_layouts() {
    local img bk vs
    run qemu-img create -f raw base.raw 2M
    run qemu-io -f raw -c 'write -P 0x09 0 2M' base.raw
    craft_layout size1000.qcow 1000 12 9 48
    craft_layout size5000.qcow 5000 9 6 48
    craft_layout l1odd.qcow $((3 << 20)) 12 9 53
    craft_layout l1far.qcow $((3 << 20)) 12 9 10000
    craft_layout bfar.qcow $((3 << 20)) 9 12 1000 base.raw 200
    craft_layout bafter.qcow $((3 << 20)) 12 9 48 base.raw 4000
    local w1=(-c 'write -P 0x21 0 1' -c 'write -P 0x22 100 300')
    local w2 w2plain cl
    for img in size1000 size5000 l1odd l1far bfar bafter; do
        same_info $img.qcow
        same_map $img.qcow
        same_reading $img.qcow
        vs=$(vsize $img.qcow)
        case $img in
        bfar | bafter) cp base.raw $img.ref ;;
        *) rm -f $img.ref ;;
        esac
        truncate -s "$vs" $img.ref
        cp $img.qcow $img.k.qcow
        run qemu-io "${w1[@]}" $img.qcow
        run "$QCOWKIT" io "${w1[@]}" $img.k.qcow
        run qemu-io -f raw "${w1[@]}" $img.ref
        if [ "$img" = bafter ]; then
            same_reading $img.qcow
        else
            same_reading $img.qcow $img.ref
        fi
        same_reading $img.k.qcow $img.ref
        same_map $img.qcow
        same_map $img.k.qcow
        [ "$vs" -gt 3000000 ] || continue
        cl=$((1 << $(geometry $img.qcow | cut -d' ' -f1)))
        w2=(-c 'write -P 0x23 1000000 2000000' -c "write -c -P 0x24 $((2 * cl)) $cl")
        w2plain=(-c 'write -P 0x23 1000000 2000000' -c "write -P 0x24 $((2 * cl)) $cl")
        run qemu-io "${w2[@]}" $img.qcow
        run "$QCOWKIT" io "${w2[@]}" $img.k.qcow
        run qemu-io -f raw "${w2plain[@]}" $img.ref
        if [ "$img" = bafter ]; then
            same_reading $img.qcow
        else
            same_reading $img.qcow $img.ref
        fi
        same_reading $img.k.qcow $img.ref
        same_map $img.qcow
        same_map $img.k.qcow
    done
}

# QEMU 7.2's qcow driver, allocating a cluster for a partial write, does
# not copy the rest of the cluster from the backing file: that part then
# reads as zeros.  QEMU itself only creates overlays with 512-byte
# clusters, where this cannot happen; `qcowkit create -o cluster_size=N
# -b ...` makes larger ones.  Here: (1) qcowkit reads QEMU's result as
# QEMU does (zeros), (2) qcowkit's own partial writes keep the backing
# data (QEMU reads them so too), (3) qcowkit does write whole clusters.
case_backing_big_clusters() {
    run qemu-img create -f raw base.raw 1M
    run qemu-io -f raw -c 'write -P 0x09 0 1M' base.raw
    run "$QCOWKIT" create -f qcow -b base.raw -F raw -o cluster_size=4096 q.qcow 1M
    cp q.qcow k.qcow
    local w=(-c 'write -P 0x21 0 1' -c 'write -P 0x22 5000 10' -c 'write -P 0x23 12287 2')
    run qemu-io "${w[@]}" q.qcow
    run "$QCOWKIT" io "${w[@]}" k.qcow
    cp base.raw ref.raw
    run qemu-io -f raw "${w[@]}" ref.raw
    same_reading q.qcow
    run qemu-io -r -c 'read -P 0 512 3584' q.qcow # QEMU's behaviour
    same_reading k.qcow ref.raw
    same_map q.qcow
    same_map k.qcow
}

# same_map IMG / same_info IMG: as in interop-map.sh, in short.
same_map() {
    qemu-img map --output=json "$1" >"$1.q.map" || fail "qemu-img map $1 failed"
    "$QCOWKIT" map --output=json "$1" >"$1.k.map" || fail "qcowkit map $1 failed"
    cmp -s "$1.q.map" "$1.k.map" || {
        cat "$1.q.map" "$1.k.map" >&2
        fail "map --output=json $1: qcowkit differs from qemu-img"
    }
}
same_info() {
    qemu-img info --output=json "$1" >"$1.q.info" || fail "qemu-img info $1 failed"
    "$QCOWKIT" info --output=json "$1" >"$1.k.info" || fail "qcowkit info $1 failed"
    python3 -c '
import json, sys
q, k = (json.load(open(f)) for f in sys.argv[1:])
sys.exit(0 if q == k else "qemu-img %r\nqcowkit  %r" % (q, k))' "$1.q.info" "$1.k.info" ||
        fail "info --output=json $1: qcowkit differs from qemu-img"
}

run_case sizes case_sizes
run_case backing-relative case_backing_relative
run_case backing-absolute case_backing_absolute
run_case craft-selfcheck case_craft_selfcheck
run_case geometry-9-6 case_geometry_9_6
run_case geometry-9-13 case_geometry_9_13
run_case geometry-16-6 case_geometry_16_6
run_case geometry-16-13 case_geometry_16_13
run_case cluster-size-option case_cluster_size_option
run_case crafted-layouts case_crafted_layouts
run_case backing-big-clusters case_backing_big_clusters
finish
