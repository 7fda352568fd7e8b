#!/usr/bin/env bash
# interop-encrypted: qcow images with legacy AES encryption, with QEMU's
# syntax for keys (--object secret,id=ID,data=PASSWORD and --image-opts
# driver=qcow,file.filename=FILE,encrypt.key-secret=ID):
#  - `qcowkit create -o encrypt.format=aes,...` makes the same file as
#    qemu-img create;
#  - images QEMU encrypted read the same in qcowkit, and the other way;
#  - map and info agree, with and without the key.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires qemu-img qemu-io python3 cmp
requires_qcowkit
make_tmpdir
use_unsafe_qemu_io

OBJ=(--object secret,id=sec0,data=correct-horse)
BAD=(--object secret,id=sec0,data=wrong-pony)
# opts FILE: the --image-opts string of an encrypted qcow FILE.
opts() {
    echo "driver=qcow,file.filename=$1,encrypt.key-secret=sec0"
}
ENC=(-o encrypt.format=aes,encrypt.key-secret=sec0)

# decrypted_same IMG [REF]: both tools decrypt IMG alike (and as REF).
decrypted_same() {
    local img=$1 ref=${2:-}
    run qemu-img convert "${OBJ[@]}" --image-opts "$(opts "$img")" -O raw "$img.q.raw"
    rm -f "$img.k.raw"
    run "$QCOWKIT" convert "${OBJ[@]}" --image-opts "$(opts "$img")" -O raw "$img.k.raw"
    same_files "$img.q.raw" "$img.k.raw" "$img: decrypted by qemu-img vs qcowkit"
    [ -z "$ref" ] || same_files "$ref" "$img.q.raw" "$img: decrypted by QEMU vs expected"
    rm -f "$img.q.raw" "$img.k.raw"
}

case_create() {
    local s
    for s in 1 513 1M $(((1 << 30) + 7)) 100G; do
        run qemu-img create "${OBJ[@]}" -f qcow "${ENC[@]}" q$s.qcow "$s"
        run "$QCOWKIT" create "${OBJ[@]}" -f qcow "${ENC[@]}" k$s.qcow "$s"
        same_files q$s.qcow k$s.qcow "encrypted create $s"
    done
    # The deprecated spelling, and with a backing file.
    run qemu-img create "${OBJ[@]}" -f qcow -o encryption=on,encrypt.key-secret=sec0 qe.qcow 2M
    run "$QCOWKIT" create "${OBJ[@]}" -f qcow -o encryption=on,encrypt.key-secret=sec0 ke.qcow 2M
    same_files qe.qcow ke.qcow "create -o encryption=on"
    run qemu-img create -f raw base.raw 2M
    run qemu-img create "${OBJ[@]}" -f qcow -b base.raw -F raw "${ENC[@]}" qb.qcow
    run "$QCOWKIT" create "${OBJ[@]}" -f qcow -b base.raw -F raw "${ENC[@]}" kb.qcow
    same_files qb.qcow kb.qcow "encrypted create with backing"
}

# QEMU writes, qcowkit reads; qcowkit writes, QEMU reads.
case_rw() {
    local size=$((6 << 20))
    run qemu-img create "${OBJ[@]}" -f qcow "${ENC[@]}" q.qcow "$size"
    cp q.qcow k.qcow
    truncate -s "$size" ref.raw
    gen_writes 42 "$size" 30 21 >w.list
    io_args w.list
    run qemu-io "${OBJ[@]}" --image-opts "$(opts q.qcow)" "${IO_ARGS[@]}"
    run "$QCOWKIT" io "${OBJ[@]}" --image-opts "$(opts k.qcow)" "${IO_ARGS[@]}"
    run qemu-io -f raw "${IO_ARGS[@]}" ref.raw
    decrypted_same q.qcow ref.raw
    decrypted_same k.qcow ref.raw
    # Each writes more into the other's image.
    gen_writes 43 "$size" 10 20 >w2.list
    io_args w2.list
    run qemu-io "${OBJ[@]}" --image-opts "$(opts k.qcow)" "${IO_ARGS[@]}"
    run "$QCOWKIT" io "${OBJ[@]}" --image-opts "$(opts q.qcow)" "${IO_ARGS[@]}"
    run qemu-io -f raw "${IO_ARGS[@]}" ref.raw
    decrypted_same q.qcow ref.raw
    decrypted_same k.qcow ref.raw
    # A wrong key is not detected by the format: both tools must decrypt
    # to the same garbage.
    run qemu-img convert "${BAD[@]}" --image-opts "$(opts q.qcow)" -O raw bad.q.raw
    run "$QCOWKIT" convert "${BAD[@]}" --image-opts "$(opts q.qcow)" -O raw bad.k.raw
    same_files bad.q.raw bad.k.raw "decrypted with a wrong key"
    cmp -s bad.q.raw ref.raw && fail "test error: wrong key decrypts correctly"
    true
}

# An encrypted overlay on a raw backing file.
case_overlay() {
    make_data base.raw $((3 << 20)) 1
    run qemu-img create "${OBJ[@]}" -f qcow -b base.raw -F raw "${ENC[@]}" q.qcow
    cp q.qcow k.qcow
    cp base.raw ref.raw
    gen_writes 44 $((3 << 20)) 20 20 >w.list
    io_args w.list
    run qemu-io "${OBJ[@]}" --image-opts "$(opts q.qcow)" "${IO_ARGS[@]}"
    run "$QCOWKIT" io "${OBJ[@]}" --image-opts "$(opts k.qcow)" "${IO_ARGS[@]}"
    run qemu-io -f raw "${IO_ARGS[@]}" ref.raw
    decrypted_same q.qcow ref.raw
    decrypted_same k.qcow ref.raw
}

# map and info, with the key, agree byte for byte; info without the key
# too (qemu-img info needs no key).
case_map_info() {
    run qemu-img create "${OBJ[@]}" -f qcow "${ENC[@]}" q.qcow 4M
    run qemu-io "${OBJ[@]}" --image-opts "$(opts q.qcow)" \
        -c 'write -P 1 1000 100000' -c 'write -P 2 3M 5'
    local sub qrc krc
    # (qemu-img map in human form refuses encrypted clusters, exit 1.)
    for sub in "map --output=json" "info --output=json" map info; do
        qrc=0 krc=0
        # shellcheck disable=SC2086
        qemu-img $sub "${OBJ[@]}" --image-opts "$(opts q.qcow)" >q.out 2>/dev/null || qrc=$?
        # shellcheck disable=SC2086
        "$QCOWKIT" $sub "${OBJ[@]}" --image-opts "$(opts q.qcow)" >k.out 2>/dev/null || krc=$?
        [ "$qrc" = "$krc" ] || fail "$sub with key: qemu-img exit $qrc, qcowkit exit $krc"
        cmp -s q.out k.out || { diff q.out k.out >&2 || true; fail "$sub with key differs"; }
    done
    for sub in "info --output=json" info; do
        # shellcheck disable=SC2086
        qemu-img $sub q.qcow >q.out || fail "qemu-img $sub failed"
        # shellcheck disable=SC2086
        "$QCOWKIT" $sub q.qcow >k.out || fail "qcowkit $sub failed"
        cmp -s q.out k.out || { diff q.out k.out >&2 || true; fail "$sub without key differs"; }
    done
}

# Without the key, qemu-img map refuses to open an encrypted image
# ("Parameter 'encrypt.key-secret' is required for cipher", exit 1).
case_map_without_key() {
    run qemu-img create "${OBJ[@]}" -f qcow "${ENC[@]}" q.qcow 4M
    run qemu-io "${OBJ[@]}" --image-opts "$(opts q.qcow)" -c 'write -P 1 1000 100000'
    local out fmt qrc krc
    for fmt in json human; do
        qrc=0 krc=0
        qemu-img map --output=$fmt q.qcow >q.out 2>q.err || qrc=$?
        "$QCOWKIT" map --output=$fmt q.qcow >k.out 2>k.err || krc=$?
        [ "$qrc" = "$krc" ] || fail "map --output=$fmt without key:" \
            "qemu-img exit $qrc ($(cat q.err)), qcowkit exit $krc (stdout: $(head -c 200 k.out))"
    done
}

run_case create case_create
run_case rw case_rw
run_case overlay case_overlay
run_case map-info case_map_info
run_case map-without-key case_map_without_key
finish
