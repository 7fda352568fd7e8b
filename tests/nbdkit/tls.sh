#!/usr/bin/env bash
# nbdkit with TLS (a PSK file made by psktool) + qcow filter: nbdcopy
# over nbds+unix:// with the key reads qemu-img convert's bytes of each
# image; a client without TLS is turned away.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
source "$(dirname "$0")/lib.sh"
requires_filter
requires psktool
requires_plugin file
make_tmpdir
make_images "$T/img"
D=$T/img
run psktool -u alice -p "$T/keys.psk"

# tls_uri NAME: the TLS URI of $T/NAME.sock, as user alice.
tls_uri() {
    echo "nbds+unix://alice@/?socket=$T/$1.sock&tls-psk-file=$T/keys.psk"
}

# over_tls NAME IMAGE [FILTER-ARGS...]
over_tls() {
    local name=$1 img=$2
    shift 2
    start_nbdkit "$name" --tls=require --tls-psk="$T/keys.psk" \
        --filter="$QCOW_FILTER" file "$D/$img" "$@"
}

case_data() {
    over_tls data data.qcow
    same_export "$(tls_uri data)" data.raw "data.qcow under TLS"
    if nbdcopy "$(uri data)" plain.raw 2>/dev/null; then
        fail "a client without TLS read the export"
    fi
}

case_encrypted() {
    over_tls enc enc.qcow qcow-password="$PASSWORD"
    same_export "$(tls_uri enc)" enc.raw "enc.qcow under TLS"
}

case_chain() {
    over_tls chain top.qcow qcow-backing="$D/base.qcow"
    same_export "$(tls_uri chain)" top.raw "top.qcow under TLS"
}

run_case data in_case case_data
run_case encrypted in_case case_encrypted
run_case chain in_case case_chain
finish
