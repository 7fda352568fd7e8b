#!/usr/bin/env bash
# qemu-shim.sh - a stand-in for the qcowkit command built from qemu-img
# and qemu-io, used only to check the interop tests themselves:
#
#     QCOWKIT=tests/interop/qemu-shim.sh bash tests/interop/interop-map.sh
#
# With it every check compares QEMU against QEMU, so a failure points at
# the test, not at qcowkit (except where a test exercises behaviour that
# QEMU itself gets wrong or cannot do; each test says where).
set -euo pipefail
cmd=${1:?usage: qemu-shim.sh SUBCOMMAND ARGS...}
shift
case $cmd in
create | info | compare | map)
    exec qemu-img "$cmd" "$@" ;;
convert)
    rc=0
    out=$(qemu-img convert "$@" 2>&1) || rc=$?
    [ -n "$out" ] && printf '%s\n' "$out" >&2
    # QEMU 7.2 exits 1 without a message after writing a good compressed
    # qcow image.
    if [ "$rc" -eq 1 ] && [ -z "$out" ]; then rc=0; fi
    exit "$rc" ;;
io)
    # QEMU_SHIM_PLAIN_COMPRESS=1: turn `write -c` into plain writes, to
    # check the logic of tests whose compressed writes QEMU cannot do.
    if [ "${QEMU_SHIM_PLAIN_COMPRESS:-0}" = 1 ]; then
        args=()
        for a in "$@"; do args+=("${a/#write -c /write }"); done
        set -- "${args[@]}"
    fi
    exec qemu-io -t unsafe "$@" ;;
*)
    echo "qemu-shim.sh: unknown subcommand $cmd" >&2
    exit 2 ;;
esac
