#!/usr/bin/env bash
# interop-map: `qcowkit map --output=json FILE` prints exactly what
# `qemu-img map --output=json FILE` prints (cmp), and `qcowkit info
# --output=json FILE` has the same keys and values as `qemu-img info
# --output=json FILE`, on images QEMU made: empty, partly written,
# compressed, overlays on raw and qcow backing files, chains of depth 2,
# backing files shorter than the overlay.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires qemu-img qemu-io python3 cmp
requires_qcowkit
make_tmpdir
use_unsafe_qemu_io

# same_map IMG: both tools map IMG identically (run from the current
# folder, so the file names in the JSON are as given).
same_map() {
    local img=$1 tag=${1//\//_}
    qemu-img map --output=json "$img" >"$tag.qemu.map" ||
        fail "qemu-img map $img failed"
    "$QCOWKIT" map --output=json "$img" >"$tag.qk.map" 2>"$tag.qk.err" ||
        fail "qcowkit map --output=json $img failed: $(cat "$tag.qk.err")"
    if ! cmp -s "$tag.qemu.map" "$tag.qk.map"; then
        echo "--- qemu-img map --output=json $img" >&2
        cat "$tag.qemu.map" >&2
        echo "--- qcowkit map --output=json $img" >&2
        cat "$tag.qk.map" >&2
        fail "map --output=json $img: qcowkit differs from qemu-img"
    fi
}

# same_info IMG: `qcowkit info --output=json` and `qemu-img info
# --output=json` of IMG parse to the same object.  Both describe the same
# file at the same moment, so no key may differ: not even actual-size
# (QEMU's is the file's allocated size, st_blocks * 512, which is the same
# for both as long as nothing writes in between) nor the file names (both
# keep IMG as given and make full-backing-filename from IMG's folder).
# Only the layout of the text (indentation, key order) may differ.
same_info() {
    local img=$1 tag=${1//\//_}
    qemu-img info --output=json "$img" >"$tag.qemu.info" ||
        fail "qemu-img info $img failed"
    "$QCOWKIT" info --output=json "$img" >"$tag.qk.info" 2>"$tag.qk.err" ||
        fail "qcowkit info --output=json $img failed: $(cat "$tag.qk.err")"
    python3 - "$tag.qemu.info" "$tag.qk.info" <<'PY' || fail "info --output=json $img: qcowkit differs from qemu-img"
import json, sys
q = json.load(open(sys.argv[1]))
try:
    k = json.load(open(sys.argv[2]))
except ValueError as e:
    sys.exit("qcowkit info: not JSON: %s" % e)
bad = False
for key in sorted(set(q) | set(k)):
    if q.get(key, "<missing>") != k.get(key, "<missing>"):
        print("  %s: qemu-img %r, qcowkit %r" % (key, q.get(key, "<missing>"),
                                               k.get(key, "<missing>")),
              file=sys.stderr)
        bad = True
sys.exit(1 if bad else 0)
PY
}

# both IMG: same_map and same_info.
both() {
    same_map "$1"
    same_info "$1"
}

case_empty() {
    run qemu-img create -f qcow e.qcow 10M
    both e.qcow
    run qemu-img create -f qcow odd.qcow 513
    both odd.qcow
    # Past 4 GiB (not much further: qemu-img map takes a second per
    # 10 GiB of unallocated 4 KiB clusters).
    run qemu-img create -f qcow big.qcow $(((6 << 30) + 512))
    both big.qcow
    run qemu-io -c 'write -P 1 4294967000 1000' -c "write -P 2 $((6 << 30)) 512" big.qcow
    both big.qcow
}

case_written() {
    run qemu-img create -f qcow w.qcow $(((24 << 20) + 512))
    gen_writes 42 $((24 << 20)) 40 >w.list
    io_args w.list
    run qemu-io "${IO_ARGS[@]}" w.qcow
    both w.qcow
    # Clusters allocated out of order (host offsets not monotonic).
    run qemu-img create -f qcow ooo.qcow 8M
    run qemu-io -c 'write -P 1 7M 4k' -c 'write -P 2 0 4k' \
        -c 'write -P 3 4k 4k' -c 'write -P 4 3M 1' -c 'write -P 5 8k 4k' \
        ooo.qcow
    both ooo.qcow
    # The last cluster, partial.
    run qemu-img create -f qcow end.qcow 5000
    run qemu-io -c 'write -P 1 5119 1' end.qcow
    both end.qcow
}

case_compressed() {
    make_data src.raw $((6 << 20)) 4
    qemu_compress src.raw c.qcow
    both c.qcow
    # Compressed clusters next to normal and unallocated ones.
    run qemu-img create -f qcow m.qcow 2M
    run qemu-io -c 'write -c -P 1 0 4k' -c 'write -c -P 2 4k 4k' \
        -c 'write -P 3 8k 4k' -c 'write -c -P 4 12k 4k' \
        -c 'write -c -P 5 20k 4k' -c 'write -P 6 24k 4k' \
        -c 'write -c -P 7 1M 4k' m.qcow
    both m.qcow
}

case_raw_backing() {
    make_data base.raw $((4 << 20)) 1
    run qemu-img create -f qcow -b base.raw -F raw top.qcow
    gen_writes 7 $((4 << 20)) 20 20 >w.list
    io_args w.list
    run qemu-io "${IO_ARGS[@]}" top.qcow
    both top.qcow
    # An untouched overlay, and one with an absolute backing name.
    run qemu-img create -f qcow -b base.raw -F raw empty.qcow
    both empty.qcow
    run qemu-img create -f qcow -b "$PWD/base.raw" -F raw abs.qcow
    run qemu-io -c 'write -P 9 100000 1' abs.qcow
    both abs.qcow
    # Seen from another folder.
    mkdir sub
    cd sub
    both ../top.qcow
}

case_qcow_backing() {
    run qemu-img create -f qcow base.qcow 4M
    gen_writes 11 $((4 << 20)) 20 20 >b.list
    io_args b.list
    run qemu-io "${IO_ARGS[@]}" base.qcow
    run qemu-img create -f qcow -b base.qcow -F qcow top.qcow
    gen_writes 12 $((4 << 20)) 20 20 >t.list
    io_args t.list
    run qemu-io -c 'write -c -P 0x21 1M 512' "${IO_ARGS[@]}" top.qcow
    both top.qcow
}

case_depth2() {
    make_data base.raw $((3 << 20)) 2
    run qemu-img create -f qcow -b base.raw -F raw mid.qcow
    run qemu-img create -f qcow -b mid.qcow -F qcow top.qcow
    run qemu-io -c 'write -P 1 1000 1000' -c 'write -P 2 1M 100000' mid.qcow
    run qemu-io -c 'write -P 3 1500 10' -c 'write -P 4 1050000 10' \
        -c 'write -P 5 2M 512' top.qcow
    both top.qcow
    both mid.qcow

    run qemu-img create -f qcow q0.qcow 3M
    run qemu-img create -f qcow -b q0.qcow -F qcow q1.qcow
    run qemu-img create -f qcow -b q1.qcow -F qcow q2.qcow
    run qemu-io -c 'write -P 1 0 1M' -c 'write -c -P 6 2M 4k' q0.qcow
    run qemu-io -c 'write -P 2 4096 8192' q1.qcow
    run qemu-io -c 'write -P 3 6000 100' -c 'write -P 4 1500000 4' q2.qcow
    both q2.qcow
}

# Backing files shorter than the overlay: QEMU reports the part past the
# end of the backing file as not present, at the depth of the last
# backing file that was looked at.
case_short_backing() {
    make_data base.raw $((1 << 20)) 3
    run qemu-img create -f qcow -b base.raw -F raw top.qcow 3M
    run qemu-io -c 'write -P 1 1000 1000' -c 'write -P 2 2M 1000' top.qcow
    both top.qcow
    run qemu-img create -f qcow -b top.qcow -F qcow top2.qcow 5M
    run qemu-io -c 'write -P 3 1500 10' top2.qcow
    both top2.qcow
}

# A raw backing file with holes (made by qemu-img create -f raw and
# written in places): QEMU asks the file system where the data is
# (SEEK_DATA/SEEK_HOLE) and maps holes as "zero": true, "data": false.
case_sparse_raw_backing() {
    run qemu-img create -f raw base.raw 4M
    run qemu-io -f raw -c 'write -P 1 1M 64k' -c 'write -P 2 3M 4k' base.raw
    run qemu-img create -f qcow -b base.raw -F raw top.qcow
    run qemu-io -c 'write -P 3 100000 1' top.qcow
    both top.qcow
}

# Raw images themselves: dense, and with holes (QEMU maps holes by
# SEEK_DATA/SEEK_HOLE).
case_raw() {
    make_data dense.raw $((2 << 20)) 5
    both dense.raw
    run qemu-img create -f raw sparse.raw 4M
    run qemu-io -f raw -c 'write -P 1 1M 64k' sparse.raw
    both sparse.raw
}

# --start-offset and --max-length, and info --backing-chain.
case_options() {
    make_data base.raw $((3 << 20)) 6
    run qemu-img create -f qcow -b base.raw -F raw mid.qcow
    run qemu-img create -f qcow -b mid.qcow -F qcow top.qcow
    run qemu-io -c 'write -P 1 1000 100000' -c 'write -c -P 2 2M 512' mid.qcow
    run qemu-io -c 'write -P 3 50000 10' -c 'write -P 4 2097000 10000' top.qcow
    local o m
    for o in 0 1 511 512 1000 50000 2097152 3145727; do
        for m in 1 512 4096 1000000 100000000; do
            qemu-img map --output=json --start-offset=$o --max-length=$m \
                top.qcow >q.map || fail "qemu-img map failed"
            "$QCOWKIT" map --output=json --start-offset=$o --max-length=$m \
                top.qcow >k.map ||
                fail "qcowkit map --start-offset=$o --max-length=$m failed"
            cmp -s q.map k.map || {
                cat q.map k.map >&2
                fail "map --output=json --start-offset=$o --max-length=$m top.qcow differs"
            }
        done
    done
    qemu-img info --backing-chain --output=json top.qcow >q.info
    "$QCOWKIT" info --backing-chain --output=json top.qcow >k.info ||
        fail "qcowkit info --backing-chain failed"
    python3 -c '
import json, sys
q, k = (json.load(open(f)) for f in sys.argv[1:])
sys.exit(0 if q == k else "info --backing-chain: qemu-img %r\n qcowkit %r" % (q, k))
' q.info k.info
}

# The human-readable forms too: `map` and `info` without --output, and
# info --backing-chain; stdout and exit status must be the same (qemu-img
# map refuses compressed images in human form: so must qcowkit).
case_human() {
    make_data base.raw 3000000 3
    run qemu-img create -f qcow -b base.raw -F raw mid.qcow 3M
    run qemu-img create -f qcow -b mid.qcow -F qcow top.qcow
    run qemu-io -c 'write -P 1 1000 100000' mid.qcow
    run qemu-io -c 'write -P 3 50000 10' -c 'write -P 4 2999000 10000' top.qcow
    run qemu-img create -f qcow c.qcow 1M
    run qemu-io -c 'write -c -P 1 8192 4096' c.qcow
    mkdir sub
    local img sub args qrc krc
    for img in top.qcow mid.qcow base.raw c.qcow; do
        for sub in map info "info --backing-chain"; do
            for args in "$img" "sub/../$img"; do
                qrc=0 krc=0
                # shellcheck disable=SC2086
                qemu-img $sub "$args" >q.out 2>/dev/null || qrc=$?
                # shellcheck disable=SC2086
                "$QCOWKIT" $sub "$args" >k.out 2>/dev/null || krc=$?
                [ "$qrc" = "$krc" ] ||
                    fail "$sub $args: qemu-img exit $qrc, qcowkit exit $krc"
                cmp -s q.out k.out || {
                    diff q.out k.out >&2 || true
                    fail "$sub $args: qcowkit's output differs from qemu-img's"
                }
            done
        done
    done
}

# compare: exit status and stdout as qemu-img compare's, for identical and
# different images, different sizes (a warning; "Strict mode" with -s),
# and -s on images that differ only in allocation.
case_compare() {
    make_data a.raw $((2 << 20)) 1
    python3 -c 'import sys; open(sys.argv[2], "wb").write(open(sys.argv[1], "rb").read())' \
        a.raw dense.raw # a copy without holes
    cp dense.raw b.raw
    run qemu-io -f raw -c 'write -P 0x5c 777777 1' b.raw
    run qemu-img convert -O qcow a.raw a.qcow
    qemu_compress a.raw ac.qcow
    cp dense.raw big.raw
    truncate -s 3M big.raw
    cp big.raw big2.raw
    run qemu-io -f raw -c 'write -P 1 2500000 1' big2.raw
    # Incompressible, no zero clusters: the qcow copy is fully allocated.
    make_data r.raw $((1 << 20)) 2 random
    run qemu-img convert -O qcow r.raw r.qcow
    local pair qrc krc
    for pair in "a.qcow dense.raw" "a.qcow b.raw" "ac.qcow a.qcow" "ac.qcow b.raw" \
        "a.qcow big.raw" "a.qcow big2.raw" "big2.raw a.qcow" \
        "-s a.qcow big.raw" "-s a.qcow a.qcow" "-s ac.qcow a.qcow" \
        "-s dense.raw b.raw" "-s a.qcow dense.raw" "-s a.qcow b.raw"; do
        qrc=0 krc=0
        # shellcheck disable=SC2086
        qemu-img compare $pair >q.out 2>/dev/null || qrc=$?
        # shellcheck disable=SC2086
        "$QCOWKIT" compare $pair >k.out 2>/dev/null || krc=$?
        [ "$qrc" = "$krc" ] || fail "compare $pair: qemu-img exit $qrc, qcowkit exit $krc"
        # Strict mode: qemu-img counts its end-of-file status bit as a
        # difference, so a dense raw file "mismatches" a qcow image at the
        # start of any shorter extent; qcowkit compares only allocation and
        # data (see README, Differences from QEMU), so its first mismatch
        # may come later.  The verdict must agree; the offset must not be
        # earlier than QEMU's.
        if grep -q '^Strict mode: Offset' q.out && grep -q '^Strict mode: Offset' k.out; then
            local qoff koff
            qoff=$(sed -n 's/^Strict mode: Offset \([0-9]*\) .*/\1/p' q.out)
            koff=$(sed -n 's/^Strict mode: Offset \([0-9]*\) .*/\1/p' k.out)
            [ "$koff" -ge "$qoff" ] || fail "compare $pair: qcowkit found a mismatch at $koff, before qemu-img's $qoff"
            continue
        fi
        cmp -s q.out k.out || {
            diff q.out k.out >&2 || true
            fail "compare $pair: qcowkit's output differs from qemu-img's"
        }
    done
    # A deliberate difference (README): a fully allocated qcow copy and its
    # raw source have the same allocation and data, so strict mode calls
    # them identical; qemu-img reports a mismatch at 0, an artefact of its
    # end-of-file status bit.
    qrc=0 krc=0
    qemu-img compare -s r.qcow r.raw >q.out 2>/dev/null || qrc=$?
    "$QCOWKIT" compare -s r.qcow r.raw >k.out 2>/dev/null || krc=$?
    [ "$krc" = 0 ] && grep -qx 'Images are identical.' k.out ||
        fail "compare -s r.qcow r.raw: qcowkit exit $krc: $(cat k.out)"
    [ "$qrc" = 1 ] && grep -q '^Strict mode: Offset 0 ' q.out ||
        fail "compare -s r.qcow r.raw: qemu-img no longer reports its EOF-bit mismatch (exit $qrc): update the README"
}

run_case empty case_empty
run_case written case_written
run_case compressed case_compressed
run_case raw-backing case_raw_backing
run_case qcow-backing case_qcow_backing
run_case depth2 case_depth2
run_case short-backing case_short_backing
run_case sparse-raw-backing case_sparse_raw_backing
run_case raw case_raw
run_case options case_options
run_case human case_human
run_case compare case_compare
finish
