#!/usr/bin/env bash
# The qcow filter against a hostile neighbourhood: a plugin that fails
# reads (nbdkit's error filter), and many clients at once.  Whatever
# happens, nbdkit stays up, and once the plugin reads right again every
# client reads the guest disk qemu-img reads: no failed read is remembered
# in the library's caches.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
source "$(dirname "$0")/lib.sh"
requires_filter
requires_plugin file
requires_nbdkit_filter error
make_tmpdir
make_images "$T/img"
D=$T/img

# The plugin fails a third of its reads while $T/failing exists; the
# client connects once it can (opening the image reads the plugin too).
case_failing_plugin() {
    local i
    touch "$T/failing"
    # -t 1: nbdkit 1.32 itself aborts (connections.c, "sock >= 0") when a
    # client hangs up while another thread of the connection is replying,
    # which nbdcopy does on a failed read.  One thread per connection
    # keeps the server up; the filter's behaviour on errors is the same.
    start_nbdkit failing -t 1 --filter="$QCOW_FILTER" --filter=error file \
        "$D/top.qcow" qcow-backing="$D/base.qcow" error-pread-rate=0.3 \
        error-file="$T/failing"
    for i in 1 2 3; do
        nbdcopy "$(uri failing)" "$T/partial.raw" 2>/dev/null || true
    done
    grep -q "error" "$T/failing.err" || fail "the error filter failed nothing"
    kill -0 "$PID" 2>/dev/null || fail "nbdkit exited: $(cat "$T/failing.err")"
    rm "$T/failing"
    same_export "$(uri failing)" top.raw "top.qcow after plugin errors"
    same_map "$(uri failing)" top.qcow -f qcow "$D/top.qcow"
}

# 24 clients copy the disk at once (each its own library handle), all
# get the right bytes.
case_many_clients() {
    local i pids=()
    start_nbdkit many --filter="$QCOW_FILTER" file "$D/comp.qcow"
    for i in $(seq 24); do
        nbdcopy --request-size=65536 "$(uri many)" "$T/c$i.raw" &
        pids+=($!)
    done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || fail "client $((i + 1)) failed"
    done
    for i in $(seq 24); do
        same_files "$REF_DIR/comp.raw" "$T/c$i.raw" "client $i"
    done
    kill -0 "$PID" 2>/dev/null || fail "nbdkit exited: $(cat "$T/many.err")"
}

run_case failing_plugin in_case case_failing_plugin
run_case many_clients in_case case_many_clients
finish
