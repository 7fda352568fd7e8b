#!/usr/bin/env bash
# What the qcow filter refuses, and how: at connection time, with one
# message in nbdkit's log naming what is wrong, the server still up and
# serving other connections, never a crash.
#  - an overlay whose backing file is not given (the stored name shown);
#  - qcow-backing= for an image that names no backing file;
#  - an encrypted image without qcow-password=;
#  - data that is not a qcow image;
#  - a corrupt header, and a corrupt table entry (reads of it fail with
#    EIO, the rest of the disk still reads).
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
source "$(dirname "$0")/lib.sh"
requires_filter
requires_plugin file
make_tmpdir
make_images "$T/img"
D=$T/img

# refused NAME IMAGE PATTERN [FILTER-ARGS...]: a client cannot connect,
# nbdkit logs an error matching PATTERN (grep -E), and keeps running.
refused() {
    local name=$1 img=$2 pattern=$3
    shift 3
    start_nbdkit "$name" --filter="$QCOW_FILTER" file "$img" "$@"
    if nbdinfo --size "$(uri "$name")" >out 2>&1; then
        fail "$name: a client connected: $(cat out)"
    fi
    grep -E "error: .*$pattern" "$T/$name.err" >/dev/null ||
        fail "$name: no error matching '$pattern' in: $(cat "$T/$name.err")"
    kill -0 "$PID" 2>/dev/null || fail "$name: nbdkit exited"
}

# poke FILE OFFSET HEX: overwrite bytes of FILE.
poke() {
    printf "$(echo "$3" | sed 's/../\\x&/g')" |
        dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

case_unbacked() {
    refused unbacked "$D/top.qcow" \
        "names the backing file 'base.qcow'.*qcow-backing="
}

case_needless_backing() {
    refused needless "$D/data.qcow" "names no backing file" \
        qcow-backing="$D/base.qcow"
}

case_no_password() {
    refused nokey "$D/enc.qcow" "is encrypted.*qcow-password="
}

case_not_qcow() {
    refused raw "$REF_DIR/data.raw" "image"
}

case_bad_header() {
    cp "$D/data.qcow" bad.qcow
    poke bad.qcow 32 11 # cluster_bits 17
    refused header "$PWD/bad.qcow" "cluster_bits 17"
}

case_bad_table() {
    local l1
    cp "$D/data.qcow" bad.qcow
    l1=$(od -An -j40 -N8 -tx1 bad.qcow | tr -d ' \n')
    # The first L1 entry: an L2 table far past the end of the file.
    poke bad.qcow "$((16#$l1))" 00007fffffff0000
    start_nbdkit table --filter="$QCOW_FILTER" file "$PWD/bad.qcow"
    if nbdcopy "$(uri table)" out.raw 2>err; then
        fail "a copy of an image with a corrupt L2 pointer succeeded"
    fi
    grep -q "error" "$T/table.err" || fail "no error logged"
    kill -0 "$PID" 2>/dev/null || fail "nbdkit exited: $(cat "$T/table.err")"
    # Past the first L2 table's reach, the disk still reads.
    qemu-io -r -f raw -c 'read -P 0xa5 5000000 1M' "$(uri table)" >out 2>&1 ||
        fail "read after the corrupt range: $(cat out)"
    grep -q "verification failed" out && fail "read: $(cat out)"
    kill -0 "$PID" 2>/dev/null || fail "nbdkit exited"
}

run_case unbacked in_case case_unbacked
run_case needless_backing in_case case_needless_backing
run_case no_password in_case case_no_password
run_case not_qcow in_case case_not_qcow
run_case bad_header in_case case_bad_header
run_case bad_table in_case case_bad_table
finish
