#!/bin/bash
# A raw image served with its format probed: a client cannot write a qcow
# (or other format's) header into sector 0 (CVE-2008-2004); with -f raw it
# can.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir
requires qemu-io

printf 'QFI\xfb\0\0\0\1\0\0\0\0\0\0\0\x30\0\0\0\x0a' >hdr
{ printf 'raw!'; head -c 1048572 /dev/zero; } >orig.raw
cp orig.raw p.raw

# -t: one server for several clients.
start_nbd a -t -k "$T/a.sock" p.raw
qemu-io -f raw "$(uri a)" -c 'write -s hdr 0 20' >out 2>&1 || true
grep -q "^write failed: Operation not permitted$" out ||
    fail "header write over NBD: $(cat out)"
# The magic completed by a one-byte write.
qemu-io -f raw "$(uri a)" -c 'write -P 0x51 0 1' -c 'write -P 0x46 1 1' \
    -c 'write -P 0x49 2 1' -c 'write -P 0xfb 3 1' >out 2>&1 || true
[ "$(grep -c '^wrote' out)" = 3 ] && grep -q "Operation not permitted" out ||
    fail "byte writes over NBD: $(cat out)"
# Elsewhere writes go through.
qemu-io -f raw "$(uri a)" -c 'write -P 0x22 512 512' >out 2>&1
grep -q "^wrote 512/512" out || fail "write past sector 0: $(cat out)"
stop_nbd "$PID"
[ "$(head -c 4 p.raw)" = "QFI!" ] || fail "sector 0 is $(head -c 4 p.raw | od -An -tx1)"
[ "$("$Q" info p.raw | sed -n 2p)" = "file format: raw" ] ||
    fail "p.raw probes as another format"

# With -f raw the client may write what it likes.
cp orig.raw p.raw
start_nbd b -f raw -k "$T/b.sock" p.raw
qemu-io -f raw "$(uri b)" -c 'write -s hdr 0 20' >out 2>&1
grep -q "^wrote 20/20" out || fail "-f raw: $(cat out)"
wait_exit "$PID"
cmp -n 20 hdr p.raw || fail "-f raw: header not written"
echo ok
