#!/usr/bin/env bash
# nbdkit curl plugin + qcow filter against a real HTTP server (nginx-light
# on 127.0.0.1, started here): every test image, read over HTTP byte
# ranges, is qemu-img convert's reading of it; the map has its holes.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
source "$(dirname "$0")/lib.sh"
requires_filter
requires nginx
requires_plugin curl
make_tmpdir
make_images "$T/www"
start_nginx "$T/www"
URL=http://127.0.0.1:$HTTP_PORT

# over_http NAME IMAGE [FILTER-ARGS...]
over_http() {
    local name=$1 img=$2
    shift 2
    start_nbdkit "$name" --filter="$QCOW_FILTER" curl "$URL/$img" "$@"
}

case_data() {
    over_http data data.qcow
    same_export "$(uri data)" data.raw "data.qcow over HTTP"
    same_map "$(uri data)" data.qcow -f qcow "$T/www/data.qcow"
}

case_compressed() {
    over_http comp comp.qcow
    same_export "$(uri comp)" comp.raw "comp.qcow over HTTP"
}

case_encrypted() {
    over_http enc enc.qcow qcow-password="$PASSWORD"
    same_export "$(uri enc)" enc.raw "enc.qcow over HTTP"
}

case_chain() {
    over_http chain top.qcow qcow-backing="$T/www/base.qcow"
    same_export "$(uri chain)" top.raw "top.qcow over HTTP, base.qcow local"
    same_map "$(uri chain)" top.qcow -f qcow "$T/www/top.qcow"
}

run_case data in_case case_data
run_case compressed in_case case_compressed
run_case encrypted in_case case_encrypted
run_case chain in_case case_chain
finish
