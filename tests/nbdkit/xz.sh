#!/usr/bin/env bash
# nbdkit file plugin + xz filter + qcow filter: images compressed with
# `xz --block-size=1MiB` (so that nbdkit can seek in them) are read as
# qemu-img convert reads the uncompressed image.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
source "$(dirname "$0")/lib.sh"
requires_filter
requires xz
requires_plugin file
requires_nbdkit_filter xz
make_tmpdir
make_images "$T/img"
D=$T/img
for n in data comp enc top; do
    run xz -k --block-size=1MiB "$D/$n.qcow"
done

# from_xz NAME IMAGE [FILTER-ARGS...]: qcow over xz over the file IMAGE.xz.
from_xz() {
    local name=$1 img=$2
    shift 2
    start_nbdkit "$name" --filter="$QCOW_FILTER" --filter=xz \
        file "$D/$img.xz" "$@"
}

case_data() {
    from_xz data data.qcow
    same_export "$(uri data)" data.raw "data.qcow.xz"
    same_map "$(uri data)" data.qcow -f qcow "$D/data.qcow"
}

case_compressed() {
    from_xz comp comp.qcow
    same_export "$(uri comp)" comp.raw "comp.qcow.xz"
}

case_encrypted() {
    from_xz enc enc.qcow qcow-password="$PASSWORD"
    same_export "$(uri enc)" enc.raw "enc.qcow.xz"
}

case_chain() {
    from_xz chain top.qcow qcow-backing="$D/base.qcow"
    same_export "$(uri chain)" top.raw "top.qcow.xz over base.qcow"
}

run_case data in_case case_data
run_case compressed in_case case_compressed
run_case encrypted in_case case_encrypted
run_case chain in_case case_chain
finish
