#!/usr/bin/env bash
# interop-encrypt: AES-encrypted qcow images (crypt_method 1) between QEMU
# and qcowkit, with QEMU's own syntax on both sides:
#
#   --object secret,id=s,data=PASSWORD  (or file=PATH)
#   --image-opts driver=qcow,file.filename=IMG,encrypt.key-secret=s
#   create -o encrypt.format=aes,encrypt.key-secret=s  (or encryption=on)
#
# Cases: QEMU writes, qcowkit reads; qcowkit writes, QEMU reads; encrypted
# overlays over plain raw and qcow backing files made by either side;
# conversions into encrypted images; no plaintext in the image file; a
# wrong password reads other data (the format has no key check) exactly as
# QEMU reads it; a missing key is a clear error.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires qemu-img qemu-io python3 cmp grep
requires_qcowkit
make_tmpdir
use_unsafe_qemu_io

PW="correct horse"
SEC=(--object "secret,id=s,data=$PW")
AES=(-o encrypt.format=aes,encrypt.key-secret=s)

# opts IMG [SECRET-ID]: the --image-opts string of the encrypted IMG.
opts() {
    echo "driver=qcow,file.filename=$1,encrypt.key-secret=${2:-s}"
}

# q_writes IMG LIST / k_writes IMG LIST [PARTS]: apply a write list with
# qemu-io / qcowkit io to the encrypted IMG.
q_writes() {
    io_args "$2"
    run qemu-io "${SEC[@]}" --image-opts "${IO_ARGS[@]}" "$(opts "$1")"
}

k_writes() {
    local img=$1 list=$2 parts=${3:-1} n i
    n=$(wc -l <"$list")
    for ((i = 0; i < parts; i++)); do
        sed -n "$((i * n / parts + 1)),$(((i + 1) * n / parts))p" "$list" >"$list.part"
        [ -s "$list.part" ] || continue
        io_args "$list.part"
        run "$QCOWKIT" io "${SEC[@]}" --image-opts "${IO_ARGS[@]}" "$(opts "$img")"
    done
    rm -f "$list.part"
}

# ref_writes LIST RAW: the same writes on a raw reference.
ref_writes() {
    io_args "$1"
    run qemu-io -f raw "${IO_ARGS[@]}" "$2"
}

# both_read IMG REF [SECRET-ARGS...]: QEMU and qcowkit convert the
# encrypted IMG to raw (key from SECRET-ARGS, default the right one);
# both results must equal each other and, unless REF is "-", REF.
both_read() {
    local img=$1 ref=$2
    shift 2
    local sec=("${SEC[@]}")
    [ $# -gt 0 ] && sec=("$@")
    rm -f "$img.q.raw" "$img.k.raw"
    run qemu-img convert "${sec[@]}" --image-opts "$(opts "$img")" -O raw "$img.q.raw"
    run "$QCOWKIT" convert "${sec[@]}" --image-opts "$(opts "$img")" -O raw "$img.k.raw"
    same_files "$img.q.raw" "$img.k.raw" "$img: qemu-img vs qcowkit convert -O raw"
    if [ "$ref" != - ]; then
        same_files "$ref" "$img.q.raw" "$img: QEMU's reading vs reference"
    fi
}

# q_compare IMG REF: `qemu-img compare` calls the encrypted IMG and the
# raw REF identical.
q_compare() {
    local out rc=0
    out=$(qemu-img compare "${SEC[@]}" --image-opts "$(opts "$1")" \
        "driver=raw,file.filename=$2" 2>&1) || rc=$?
    if [ "$rc" -ne 0 ] || [ "$out" != "Images are identical." ]; then
        printf '%s\n' "$out" >&2
        fail "qemu-img compare $1 $2: exit $rc, not identical"
    fi
}

encrypted() {
    qemu-img info "$1" | grep -q '^encrypted: yes$' || fail "$1 is not encrypted"
}

# QEMU creates and writes (writes of 1 byte .. 1 MiB, unaligned offsets),
# qcowkit reads the same; and through qcowkit io -r with read -P.
case_qemu_writes() {
    run qemu-img create -f qcow "${SEC[@]}" "${AES[@]}" img.qcow 12M
    run qemu-img create -f raw ref.raw 12M
    gen_writes 4101 $((12 << 20)) 50 20 >w
    q_writes img.qcow w
    ref_writes w ref.raw
    encrypted img.qcow
    both_read img.qcow ref.raw
    run "$QCOWKIT" compare "${SEC[@]}" --image-opts "$(opts img.qcow)" \
        "driver=raw,file.filename=ref.raw"
    # The last write's pattern reads back through qcowkit io.
    read -r off len pat <<<"$(tail -1 w)"
    run "$QCOWKIT" io -r "${SEC[@]}" --image-opts \
        -c "read -q -P $pat $off $len" "$(opts img.qcow)"
}

# The old syntax: -o encryption=on, a password from a file (whose trailing
# newline is part of the password, in both programs), a size that is not
# a multiple of the cluster size.
case_qemu_writes_file_secret() {
    printf 'pass word\n' >pw.txt
    local sec=(--object secret,id=f,file=pw.txt)
    run qemu-img create -f qcow "${sec[@]}" -o encryption=on,encrypt.key-secret=f \
        img.qcow 3000001
    run qemu-img create -f raw ref.raw "$(vsize img.qcow)"
    gen_writes 77 "$(vsize img.qcow)" 30 20 >w
    io_args w
    run qemu-io "${sec[@]}" --image-opts "${IO_ARGS[@]}" "$(opts img.qcow f)"
    ref_writes w ref.raw
    rm -f k.raw
    run "$QCOWKIT" convert "${sec[@]}" --image-opts -O raw "$(opts img.qcow f)" k.raw
    same_files ref.raw k.raw "file secret: qcowkit's reading vs reference"
    # Without the newline it is another password: other data.
    printf 'pass word' >pw2.txt
    rm -f k2.raw
    run "$QCOWKIT" convert --object secret,id=f,file=pw2.txt --image-opts -O raw \
        "$(opts img.qcow f)" k2.raw
    if cmp -s ref.raw k2.raw; then fail "the newline was dropped from the password"; fi
}

# qcowkit creates and writes (in three runs), QEMU's compare calls it
# identical to the raw reference and QEMU's reading is byte-identical.
case_qcowkit_writes() {
    run "$QCOWKIT" create -q -f qcow "${SEC[@]}" "${AES[@]}" img.qcow 12M
    run qemu-img create -f raw ref.raw 12M
    encrypted img.qcow
    gen_writes 9091 $((12 << 20)) 60 20 >w
    k_writes img.qcow w 3
    ref_writes w ref.raw
    q_compare img.qcow ref.raw
    both_read img.qcow ref.raw
}

# Created by qcowkit with encryption=on and 512-byte clusters, written by
# both in turn.
case_alternating() {
    run "$QCOWKIT" create -q -f qcow "${SEC[@]}" \
        -o encryption=on,encrypt.key-secret=s,cluster_size=512 img.qcow 5M
    run qemu-img create -f raw ref.raw 5M
    gen_writes 5150 $((5 << 20)) 40 20 >w
    sed -n '1,10p' w >w1; sed -n '11,20p' w >w2
    sed -n '21,30p' w >w3; sed -n '31,40p' w >w4
    k_writes img.qcow w1
    q_writes img.qcow w2
    k_writes img.qcow w3
    q_writes img.qcow w4
    ref_writes w ref.raw
    q_compare img.qcow ref.raw
    both_read img.qcow ref.raw
}

# overlay_case MAKER BASEFMT: an encrypted overlay over a plain BASEFMT
# backing file; MAKER (qemu or qk) creates and writes the overlay, the
# other program reads it.
overlay_case() {
    local maker=$1 bfmt=$2
    make_data base.data $((6 << 20)) 31 mix
    if [ "$bfmt" = raw ]; then
        cp base.data base.raw
    else
        run qemu-img convert -f raw -O qcow base.data base.qcow
    fi
    if [ "$maker" = qemu ]; then
        run qemu-img create -f qcow "${SEC[@]}" "${AES[@]}" -b "base.$bfmt" \
            -F "$bfmt" ov.qcow
    else
        run "$QCOWKIT" create -q -f qcow "${SEC[@]}" "${AES[@]}" -b "base.$bfmt" \
            -F "$bfmt" ov.qcow
    fi
    encrypted ov.qcow
    cp base.data ref.raw
    gen_writes 2024 $((6 << 20)) 30 20 >w
    if [ "$maker" = qemu ]; then q_writes ov.qcow w; else k_writes ov.qcow w 2; fi
    ref_writes w ref.raw
    both_read ov.qcow ref.raw
    q_compare ov.qcow ref.raw
    run "$QCOWKIT" compare "${SEC[@]}" --image-opts "$(opts ov.qcow)" \
        "driver=raw,file.filename=ref.raw"
    # The backing file stays plain and untouched.
    if [ "$bfmt" = raw ]; then same_files base.data base.raw "backing file"; fi
    # Unwritten ranges read from the backing file through the overlay.
    run "$QCOWKIT" map --output=json "${SEC[@]}" --image-opts "$(opts ov.qcow)"
}
case_overlay_qemu_raw() { overlay_case qemu raw; }
case_overlay_qemu_qcow() { overlay_case qemu qcow; }
case_overlay_qk_raw() { overlay_case qk raw; }
case_overlay_qk_qcow() { overlay_case qk qcow; }

# convert into encrypted images, both directions, and out of them.
case_convert() {
    make_data src.raw $((4 << 20)) 8 mix
    run "$QCOWKIT" convert "${SEC[@]}" -O qcow "${AES[@]}" src.raw k.qcow
    encrypted k.qcow
    both_read k.qcow src.raw
    run qemu-img convert "${SEC[@]}" -O qcow "${AES[@]}" src.raw q.qcow
    both_read q.qcow src.raw
    # encrypted -> encrypted with another password (qcowkit), read by QEMU.
    run "$QCOWKIT" convert "${SEC[@]}" --object secret,id=t,data=other \
        --image-opts -O qcow -o encrypt.format=aes,encrypt.key-secret=t \
        "$(opts q.qcow)" k2.qcow
    rm -f k2.raw
    run qemu-img convert --object secret,id=t,data=other --image-opts \
        "$(opts k2.qcow t)" -O raw k2.raw
    same_files src.raw k2.raw "re-encrypted copy"
}

# A distinctive ASCII text written to an encrypted image must not appear
# in the image file (by either program); the same text written to a plain
# image does (so that the grep is known to work).
case_no_plaintext() {
    python3 -c '
import sys
line = b"QCOWKIT-PLAINTEXT-CANARY-0123456789-the-quick-brown-fox\n"
sys.stdout.buffer.write((line * (300000 // len(line) + 1))[:300000])' >canary.txt
    local n
    run "$QCOWKIT" create -q -f qcow "${SEC[@]}" "${AES[@]}" k.qcow 4M
    run "$QCOWKIT" io "${SEC[@]}" --image-opts -c 'write -s canary.txt 1234 300000' \
        -c 'write -s canary.txt 2097152 300000' "$(opts k.qcow)"
    run qemu-img create -f qcow "${SEC[@]}" "${AES[@]}" q.qcow 4M
    run qemu-io "${SEC[@]}" --image-opts -c 'write -s canary.txt 777 300000' \
        "$(opts q.qcow)"
    run "$QCOWKIT" convert "${SEC[@]}" -O qcow "${AES[@]}" canary.txt c.qcow
    for img in k.qcow q.qcow c.qcow; do
        n=$(grep -c -a CANARY "$img" || true)
        [ "$n" -eq 0 ] || fail "$img: $n lines of plaintext in the image file"
    done
    # Control: a plain image holds the text.
    run "$QCOWKIT" create -q -f qcow p.qcow 4M
    run "$QCOWKIT" io -c 'write -s canary.txt 1234 300000' p.qcow
    n=$(grep -c -a CANARY p.qcow || true)
    [ "$n" -gt 0 ] || fail "control: the plain image does not hold the text"
    # And the encrypted images read back the text.
    rm -f back.raw
    run "$QCOWKIT" convert "${SEC[@]}" --image-opts -O raw "$(opts c.qcow)" back.raw
    # (the virtual size is rounded up to 512 bytes)
    cmp -n 300000 canary.txt back.raw || fail "canary read back differs"
}

# A wrong password reads other data, exactly as QEMU reads it with that
# password; a missing key is a clear error (convert, compare, io).
case_wrong_key_and_missing_key() {
    run qemu-img create -f qcow "${SEC[@]}" "${AES[@]}" img.qcow 2M
    run qemu-img create -f raw ref.raw 2M
    gen_writes 6 $((2 << 20)) 20 18 >w
    q_writes img.qcow w
    ref_writes w ref.raw
    both_read img.qcow - --object secret,id=s,data=wrong-password
    if cmp -s ref.raw img.qcow.q.raw; then
        fail "a wrong password read the right data"
    fi
    # Only the first 16 bytes of a password count (AES-128, as QEMU).
    run qemu-img create -f qcow --object secret,id=s,data=0123456789abcdefXYZ \
        "${AES[@]}" long.qcow 1M
    run qemu-io --object secret,id=s,data=0123456789abcdefXYZ --image-opts \
        -c 'write -P 0x33 0 64k' "$(opts long.qcow)"
    run "$QCOWKIT" io -r --object secret,id=s,data=0123456789abcdef --image-opts \
        -c 'read -q -P 0x33 0 64k' "$(opts long.qcow)"

    local out rc
    for args in "convert -O raw img.qcow x.raw" "compare img.qcow ref.raw" \
        "io -c read\ 0\ 512 img.qcow"; do
        eval "set -- $args"
        rc=0
        out=$("$QCOWKIT" "$@" 2>&1 >/dev/null) || rc=$?
        [ "$rc" -ne 0 ] || fail "qcowkit $args without a key succeeded"
        [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] ||
            fail "qcowkit $args: not one line: $out"
        printf '%s\n' "$out" | grep -q "Parameter 'encrypt.key-secret' is required for cipher" ||
            fail "qcowkit $args: unclear error: $out"
    done
    [ ! -e x.raw ] || fail "convert without a key created its target"
    # info needs no key, as in QEMU.
    run "$QCOWKIT" info img.qcow
}

for c in qemu_writes qemu_writes_file_secret qcowkit_writes alternating \
    overlay_qemu_raw overlay_qemu_qcow overlay_qk_raw overlay_qk_qcow \
    convert no_plaintext wrong_key_and_missing_key; do
    run_case "$c" "case_$c"
done
finish
