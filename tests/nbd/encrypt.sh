#!/bin/bash
# An AES-encrypted image exported with --object secret and --image-opts:
# reads decrypt, writes encrypt; without the key the server refuses to
# start.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir
requires qemu-io nbdcopy

S="--object secret,id=s,data=pw"
O="driver=qcow,file.filename=e.qcow,encrypt.key-secret=s"
"$Q" create -q -f qcow $S -o encrypt.format=aes,encrypt.key-secret=s e.qcow 3M 2>/dev/null
"$Q" io $S --image-opts -c 'write -q -P 0x3c 0 1M' -c 'write -q -P 0x4d 2M 5000' "$O"
"$Q" convert $S --image-opts -O raw "$O" ref.raw

start_nbd a -t $S --image-opts -k "$T/a.sock" "$O"
A=$PID
nbdcopy "$(uri a)" out.raw
cmp ref.raw out.raw || fail "decrypted copy differs"
qemu-io -f raw "$(uri a)" -c 'write -P 0x99 1500000 70000' >out 2>&1
grep -q "wrote 70000/70000" out || fail "write: $(cat out)"
stop_nbd "$A"
"$Q" io -r $S --image-opts -c 'read -P 0x99 1500000 70000' -c 'read -P 0x3c 0 1M' "$O" >out 2>&1
grep -q "Pattern verification failed" out && fail "read back: $(cat out)"
grep -q "read 70000/70000" out || fail "read back: $(cat out)"
# The data on disk is not plaintext.
if grep -qa "$(printf '\x99\x99\x99\x99\x99\x99\x99\x99\x99\x99\x99\x99')" e.qcow; then
    fail "plaintext in the image"
fi

# No key: refused before listening.
if "$Q" nbd -k "$T/b.sock" e.qcow 2>err; then
    fail "encrypted image served without a key"
fi
grep -q "encrypt.key-secret" err || fail "no key: $(cat err)"
[ ! -e "$T/b.sock" ] || fail "socket created without a key"
echo "encrypt: ok"
