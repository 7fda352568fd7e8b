#!/bin/bash
# qemu-io over nbd+unix:// and nbd://: pattern writes and reads of
# unaligned sizes, zero writes, flush; afterwards qemu-io on the image
# file itself finds them.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir
requires qemu-io qemu-img

# qemu-io prints failures but may exit 0: look at its output too.
qio() {
    local rc=0
    qemu-io "$@" >out 2>&1 || rc=$?
    if [ "$rc" != 0 ] || grep -Eq "failed|error|Error|Pattern verification" out; then
        cat out >&2
        fail "qemu-io $*"
    fi
}

"$Q" create -q -f qcow img.qcow 5M
"$Q" io -c 'write -q -P 0x77 0 5M' img.qcow

start_nbd a -k "$T/a.sock" img.qcow
qio -f raw "$(uri a)" \
    -c 'write -P 0xab 1000 3333' \
    -c 'write -P 0xcd 70001 100000' \
    -c 'write -P 0xef 4194303 1' \
    -c 'write -z 300001 5000' \
    -c 'write -f -P 0x12 5000 7' \
    -c 'flush' \
    -c 'read -P 0xab 1000 3333' \
    -c 'read -P 0xcd 70001 100000' \
    -c 'read -P 0x77 170001 129999' \
    -c 'read -P 0 300001 5000' \
    -c 'read -P 0xef 4194303 1' \
    -c 'read -P 0x77 4194304 1048576'
wait_exit "$PID"
[ "$RC" = 0 ] || fail "server exited $RC"

qio -r -f qcow img.qcow \
    -c 'read -P 0x77 0 1000' \
    -c 'read -P 0xab 1000 3333' \
    -c 'read -P 0x77 4333 667' \
    -c 'read -P 0x12 5000 7' \
    -c 'read -P 0xcd 70001 100000' \
    -c 'read -P 0 300001 5000' \
    -c 'read -P 0x77 305001 3889302' \
    -c 'read -P 0xef 4194303 1'
"$Q" check img.qcow >/dev/null || fail "check"

# Out-of-range requests fail cleanly; the connection stays usable.
start_nbd b -k "$T/b.sock" img.qcow
qemu-io -f raw "$(uri b)" -c 'read 5242880 512' -c 'read -P 0xab 1000 3333' >out 2>&1 || true
grep -q "read failed" out || fail "read past the end: $(cat out)"
grep -q "read 3333/3333 bytes" out || fail "read after an error: $(cat out)"
wait_exit "$PID"
echo "qemu-io: ok"
