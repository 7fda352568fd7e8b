#!/bin/bash
# TRIM and WRITE_ZEROES give space back (issue 12): through libnbd (trim,
# zero with and without NO_HOLE) and qemu-io's discard over nbd+unix://,
# the image file's allocated blocks (st_blocks) shrink, the ranges read
# zeros (or the backing file's data after a TRIM), and check stays clean.
# A read-only export still refuses them.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir
NBDPY=$(nbd_python)
if [ -z "$NBDPY" ]; then
    echo "no python with libnbd (python3-libnbd); skipping" >&2
    exit 77
fi

blocks() { stat -c %b "$1"; }
MIB_BLOCKS=2048
shrunk() { # BEFORE FILE MIN_BLOCKS WHAT
    local now
    now=$(blocks "$2")
    [ $(($1 - now)) -ge "$3" ] ||
        fail "$4: st_blocks $1 -> $now, expected at least $3 fewer"
}
checked() { "$Q" check "$1" >out 2>&1 || fail "check $1: $(cat out)"; }

# nbdpy NAME SCRIPT: run SCRIPT with h connected to export NAME.
nbdpy() {
    "$NBDPY" - <<PY || fail "libnbd client: $2"
import nbd
h = nbd.NBD()
h.connect_uri("$(uri "$1")")
$2
h.shutdown()
PY
}

# ------------------------------------------------ qcow without backing
"$Q" create -q -f qcow img.qcow 8M
"$Q" io -c 'write -q -P 0x55 0 8M' img.qcow
b0=$(blocks img.qcow)
start_nbd a -k "$T/a.sock" img.qcow
nbdpy a '
assert h.can_trim() and h.can_zero()
h.trim(1 << 20, 0)
h.zero(1 << 20, 2 << 20)
h.zero(1 << 20, 4 << 20, nbd.CMD_FLAG_NO_HOLE)
h.trim(5000, 6 << 20)          # one whole 4 KiB cluster inside
h.flush()
z = bytes(1 << 20)
assert h.pread(1 << 20, 0) == z
assert h.pread(1 << 20, 2 << 20) == z
assert h.pread(1 << 20, 4 << 20) == z
assert h.pread(1 << 20, 1 << 20) == b"\x55" * (1 << 20)
'
wait_exit "$PID"
[ "$RC" = 0 ] || fail "server exited $RC"
shrunk "$b0" img.qcow $((2 * MIB_BLOCKS - 32)) "trim and zero"
expect_rc 0 "$Q" io -c 'alloc 0 1M' -c 'alloc 2M 1M' -c 'alloc 4M 1M' \
    -c 'alloc 6M 8k' -c 'read -P 0 6M 4k' -c 'read -P 0x55 6295552 4k' \
    img.qcow
grep -q '^0/1048576 bytes allocated at offset 0 bytes$' out || fail "trim: $(cat out)"
grep -q '^0/1048576 bytes allocated at offset 2 MiB$' out || fail "zero: $(cat out)"
grep -q '^1048576/1048576 bytes allocated at offset 4 MiB$' out ||
    fail "zero with NO_HOLE must stay allocated: $(cat out)"
grep -q '^4096/8192 bytes allocated at offset 6 MiB$' out ||
    fail "trim of 5000 bytes: one whole cluster only: $(cat out)"
checked img.qcow

# ------------------------------------------------- qcow over a backing
"$Q" create -q -f qcow base.qcow 4M
"$Q" io -c 'write -q -P 7 0 4M' base.qcow
"$Q" create -q -f qcow -b base.qcow -F qcow top.qcow
"$Q" io -c 'write -q -P 9 0 4M' top.qcow
b0=$(blocks top.qcow)
start_nbd b -k "$T/b.sock" top.qcow
nbdpy b '
h.trim(1 << 20, 0)
h.zero(1 << 20, 1 << 20)
assert h.pread(1 << 20, 0) == b"\x07" * (1 << 20)
assert h.pread(1 << 20, 1 << 20) == bytes(1 << 20)
assert h.pread(1 << 20, 2 << 20) == b"\x09" * (1 << 20)
'
wait_exit "$PID"
shrunk "$b0" top.qcow $((MIB_BLOCKS - 16)) "trim on an overlay"
checked top.qcow

# ----------------------------------------------------------- raw export
truncate -s 4M img.raw
"$Q" io -f raw -c 'write -q -P 3 0 4M' img.raw
b0=$(blocks img.raw)
start_nbd c -f raw -k "$T/c.sock" img.raw
nbdpy c '
h.trim(1 << 20, 0)
h.zero(1 << 20, 1 << 20)
'
wait_exit "$PID"
shrunk "$b0" img.raw $((2 * MIB_BLOCKS)) "raw trim and zero"
"$Q" io -f raw -c 'read -P 0 0 2M' -c 'read -P 3 2M 2M' img.raw >out ||
    fail "raw export after trim: $(cat out)"

# ------------------------------------------------- read-only: refused
sum=$(md5sum <img.qcow)
start_nbd d -r -k "$T/d.sock" img.qcow
"$NBDPY" - <<PY || fail "read-only export"
import nbd
h = nbd.NBD()
h.set_strict_mode(0)
h.connect_uri("$(uri d)")
for op in (lambda: h.trim(4096, 4 << 20), lambda: h.zero(4096, 4 << 20)):
    try:
        op()
    except nbd.Error:
        continue
    raise SystemExit("a read-only export accepted a trim or zero")
h.shutdown()
PY
wait_exit "$PID"
[ "$(md5sum <img.qcow)" = "$sum" ] || fail "a read-only export changed"

# ------------------------------------------- qemu-io discard over NBD
if have qemu-io; then
    "$Q" create -q -f qcow q.qcow 4M
    "$Q" io -c 'write -q -P 0x44 0 4M' q.qcow
    b0=$(blocks q.qcow)
    start_nbd e -k "$T/e.sock" q.qcow
    qemu-io -f raw "$(uri e)" -c 'discard 0 2M' -c 'read -P 0 0 2M' \
        -c 'read -P 0x44 2M 2M' >out 2>&1 || fail "qemu-io: $(cat out)"
    ! grep -Eq "failed|error|Error|verification" out || fail "qemu-io: $(cat out)"
    grep -q '^discard 2097152/2097152 bytes at offset 0$' out ||
        fail "qemu-io discard: $(cat out)"
    wait_exit "$PID"
    shrunk "$b0" q.qcow $((2 * MIB_BLOCKS - 32)) "qemu-io discard over NBD"
    checked q.qcow
fi
echo "discard: ok"
