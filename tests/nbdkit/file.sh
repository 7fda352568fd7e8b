#!/usr/bin/env bash
# nbdkit file plugin + qcow filter: the export's bytes are qemu-img
# convert's reading of the image (data and holes, compressed clusters,
# AES with the password given each of nbdkit's ways, a backing chain with
# qcow-backing=), its map has the holes qemu-img map finds, and
# --filter=cow on top makes it writable without touching the image.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
source "$(dirname "$0")/lib.sh"
requires_filter
requires_plugin file
make_tmpdir
make_images "$T/img"
D=$T/img

# serve NAME IMAGE [FILTER-ARGS...]: the qcow filter over the file plugin.
serve() {
    local name=$1 img=$2
    shift 2
    start_nbdkit "$name" --filter="$QCOW_FILTER" file "$img" "$@"
}

case_data() {
    serve data "$D/data.qcow"
    same_export "$(uri data)" data.raw "data.qcow"
    same_map "$(uri data)" data.qcow -f qcow "$D/data.qcow"
}

case_compressed() {
    serve comp "$D/comp.qcow"
    same_export "$(uri comp)" comp.raw "comp.qcow"
    same_map "$(uri comp)" comp.qcow -f qcow "$D/comp.qcow"
}

case_encrypted() {
    printf '%s' "$PASSWORD" >"$T/pw"
    serve enc "$D/enc.qcow" qcow-password="$PASSWORD"
    same_export "$(uri enc)" enc.raw "enc.qcow, password on the command line"
    serve encfile "$D/enc.qcow" qcow-password=+"$T/pw"
    same_export "$(uri encfile)" enc.raw "enc.qcow, qcow-password=+FILE"
    exec 7<"$T/pw"
    serve encfd "$D/enc.qcow" qcow-password=-7
    exec 7<&-
    same_export "$(uri encfd)" enc.raw "enc.qcow, qcow-password=-FD"
}

case_chain() {
    serve chain "$D/top.qcow" qcow-backing="$D/base.qcow"
    same_export "$(uri chain)" top.raw "top.qcow over base.qcow"
    same_map "$(uri chain)" top.qcow -f qcow "$D/top.qcow"
}

case_cow() {
    local before
    before=$(md5sum <"$D/data.qcow")
    start_nbdkit cow --filter=cow --filter="$QCOW_FILTER" file "$D/data.qcow"
    run qemu-io -f raw -c 'write -P 0xee 100000 300000' "$(uri cow)"
    qemu-io -f raw -c 'read -P 0xee 100000 300000' -c 'read -P 0xa5 5000000 1M' \
        "$(uri cow)" >out 2>&1 || fail "cow read: $(cat out)"
    grep -q "verification failed" out && fail "cow read back: $(cat out)"
    [ "$(md5sum <"$D/data.qcow")" = "$before" ] || fail "cow changed the image"
}

run_case data in_case case_data
run_case compressed in_case case_compressed
run_case encrypted in_case case_encrypted
run_case chain in_case case_chain
run_case cow in_case case_cow
finish
