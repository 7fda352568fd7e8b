#!/usr/bin/env bash
# interop-compressed: compressed images.
#  - `qcowkit convert -c -O qcow SRC DST`: QEMU reads DST exactly as SRC
#    (qemu-img compare, and qemu-img convert -O raw | cmp), and DST really
#    holds compressed clusters (qemu-img map);
#  - `qemu-img convert -c -O qcow SRC DST`: qcowkit reads DST exactly as
#    SRC (qcowkit convert -O raw | cmp, qcowkit compare);
#  - qcowkit's compressed file is no larger than qemu-img's for the same
#    input (zeros, text, random data, a mix of them).
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires qemu-img qemu-io python3 cmp
requires_qcowkit
make_tmpdir
use_unsafe_qemu_io

# compressed_extents IMG: extents `qemu-img map` shows as data stored in
# IMG itself without a host offset, i.e. compressed clusters.
compressed_extents() {
    qemu-img map --output=json "$1" | python3 -c '
import json, sys
print(sum(1 for e in json.load(sys.stdin)
          if e["depth"] == 0 and e["data"] and "offset" not in e))'
}

# qk_compress SRC DST [ARGS...]: qcowkit convert -c -O qcow [ARGS] SRC DST.
qk_compress() {
    local src=$1 dst=$2
    shift 2
    rm -f "$dst"
    run "$QCOWKIT" convert -c -O qcow "$@" "$src" "$dst"
}

# roundtrip SRC RAW [EXPECT_COMPRESSED]: compress SRC (whose contents are
# the raw file RAW) with both tools; each tool must read the other's
# output as RAW; qcowkit's file must not be larger than QEMU's.
roundtrip() {
    local src=$1 raw=$2 expect=${3:-yes} qs ks
    qk_compress "$src" k.qcow
    qemu_compress "$src" q.qcow
    # QEMU reads qcowkit's image.
    qemu_same k.qcow "$raw"
    qemu_raw k.qcow k.qemu.raw
    same_files "$raw" k.qemu.raw "qemu-img's reading of qcowkit's compressed image"
    # qcowkit reads QEMU's image.
    qk_raw q.qcow q.qk.raw
    same_files "$raw" q.qk.raw "qcowkit's reading of qemu-img's compressed image"
    run "$QCOWKIT" compare q.qcow "$raw"
    run "$QCOWKIT" compare k.qcow q.qcow
    run qemu-img compare k.qcow q.qcow
    # Compression happened (where the data compresses at all).
    if [ "$expect" = yes ]; then
        [ "$(compressed_extents k.qcow)" -gt 0 ] ||
            fail "$src: qcowkit's output holds no compressed cluster"
    fi
    qs=$(stat -c %s q.qcow)
    ks=$(stat -c %s k.qcow)
    note "$src: qemu-img $qs bytes, qcowkit $ks bytes"
    [ "$ks" -le "$qs" ] ||
        fail "$src: qcowkit's compressed file ($ks bytes) is larger than qemu-img's ($qs bytes)"
    rm -f k.qemu.raw q.qk.raw
}

case_mix() {
    make_data src.raw $((8 << 20)) 4
    roundtrip src.raw src.raw
    # The same with the formats given.
    rm -f k2.qcow
    run "$QCOWKIT" convert -f raw -O qcow -c src.raw k2.qcow
    qemu_same k2.qcow src.raw
}

case_zero() {
    truncate -s 8M src.raw
    roundtrip src.raw src.raw no
    # All zeros: nothing needs to be stored at all.
    [ "$(compressed_extents k.qcow)" -eq 0 ] || note "zeros stored compressed"
}

case_text() {
    make_data src.raw $((4 << 20)) 5 text
    roundtrip src.raw src.raw
}

case_random() {
    make_data src.raw $((2 << 20)) 6 random
    # Nothing compresses: stored as normal clusters.
    roundtrip src.raw src.raw no
}

case_lowent() {
    make_data src.raw $((3 << 20)) 7 lowent
    roundtrip src.raw src.raw
}

# Sizes that end inside a cluster (qcow rounds the virtual size up to
# 512 bytes, so the raw source is padded likewise for the comparison).
case_odd_size() {
    make_data src.raw $(((3 << 20) + 1536)) 8
    roundtrip src.raw src.raw
}

# Sources whose size is not a multiple of 512 bytes: the qcow image's
# virtual size is rounded up, its last cluster is partial and padded.
case_unaligned_size() {
    make_data small.raw 1000 9 text
    cp small.raw small-padded.raw
    truncate -s 1024 small-padded.raw
    roundtrip small.raw small-padded.raw no
    make_data t.raw 10000 10 text
    cp t.raw t-padded.raw
    truncate -s 10240 t-padded.raw
    roundtrip t.raw t-padded.raw no
}

# A qcow chain as the source: the output is flattened.
case_chain_source() {
    make_data base.raw $((4 << 20)) 10
    run qemu-img create -f qcow -b base.raw -F raw mid.qcow
    run qemu-img create -f qcow -b mid.qcow -F qcow top.qcow
    gen_writes 70 $((4 << 20)) 10 20 >m.list
    io_args m.list
    run qemu-io "${IO_ARGS[@]}" mid.qcow
    gen_writes 71 $((4 << 20)) 10 20 >t.list
    io_args t.list
    run qemu-io "${IO_ARGS[@]}" top.qcow
    qemu_raw top.qcow top.raw
    roundtrip top.qcow top.raw
    [ -z "$(qemu-img info --output=json k.qcow | grep backing-filename)" ] ||
        fail "qcowkit convert output kept a backing file"
}

# Compressing an already compressed image (each tool's) again.
case_recompress() {
    make_data src.raw $((4 << 20)) 11
    qemu_compress src.raw q0.qcow
    roundtrip q0.qcow src.raw
    qk_compress src.raw k0.qcow
    roundtrip k0.qcow src.raw
}

# compare must tell images apart: exit 1, as qemu-img compare.
case_compare_different() {
    make_data src.raw $((1 << 20)) 12
    qk_compress src.raw k.qcow
    cp src.raw other.raw
    run qemu-io -f raw -c 'write -P 0x5c 777777 1' other.raw
    local rc=0
    qemu-img compare k.qcow other.raw >/dev/null 2>&1 || rc=$?
    [ "$rc" -eq 1 ] || fail "test error: qemu-img compare exit $rc, not 1"
    rc=0
    "$QCOWKIT" compare k.qcow other.raw >/dev/null 2>&1 || rc=$?
    [ "$rc" -eq 1 ] || fail "qcowkit compare of different images: exit $rc, not 1"
}

run_case mix case_mix
run_case zero case_zero
run_case text case_text
run_case random case_random
run_case lowent case_lowent
run_case odd-size case_odd_size
run_case unaligned-size case_unaligned_size
run_case chain-source case_chain_source
run_case recompress case_recompress
run_case compare-different case_compare_different
finish
