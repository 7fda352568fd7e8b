#!/bin/bash
# qcowkit io: qemu-io's commands, output and exit status.
. "$(dirname "$0")/common.sh"

"$Q" create -q -f qcow a.qcow 1M

expect_rc 0 "$Q" io -c 'write -P 0xab 0 4k' -c 'read -P 0xab 0 4k' a.qcow
[ "$(untime <out)" == "wrote 4096/4096 bytes at offset 0
4 KiB, 1 ops; TIME
read 4096/4096 bytes at offset 0
4 KiB, 1 ops; TIME" ] || fail "write/read output: $(cat out)"
grep -Eq '^4 KiB, 1 ops; [0-9]{2}\.[0-9]{2} sec \([0-9.]+ [KMGT]?i?B(ytes)?/sec and [0-9.]+ ops/sec\)$' out ||
    fail "timing line: $(cat out)"

# A pattern mismatch is reported and makes the exit status 1.
expect_rc 1 "$Q" io -c 'read -P 0xac 0 512' a.qcow
[ "$(untime <out)" == "Pattern verification failed at offset 0, 512 bytes
read 512/512 bytes at offset 0
512 bytes, 1 ops; TIME" ] || fail "pattern failure output: $(cat out)"
expect_rc 1 "$Q" io -c 'read -P 0xac 0 512' -c 'read -P 0xab 0 512' a.qcow
expect_rc 0 "$Q" io -c 'read -q -P 0xab 0 512' a.qcow
expect_out ""

expect_rc 0 "$Q" io -c 'read -v 0 20' a.qcow
[ "$(head -2 out)" == "00000000:  ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab  ................
00000010:  ab ab ab ab  ...." ] || fail "read -v: $(cat out)"

expect_rc 0 "$Q" io -c 'write -q -P 0x41 8k 4k' -c map -c 'alloc 0 64k' -c 'alloc 8k' -c length -c info a.qcow
expect_out "4 KiB (0x1000) bytes     allocated at offset 0 bytes (0x0)
4 KiB (0x1000) bytes not allocated at offset 4 KiB (0x1000)
4 KiB (0x1000) bytes     allocated at offset 8 KiB (0x2000)
1012 KiB (0xfd000) bytes not allocated at offset 12 KiB (0x3000)
8192/65536 bytes allocated at offset 0 bytes
512/512 bytes allocated at offset 8 KiB
1 MiB
format name: qcow
cluster size: 4 KiB
vm state offset: 0 bytes"

# write -z (allocates, as qemu-io on qcow) and -z -u (may stay sparse).
expect_rc 0 "$Q" io -c 'write -z 16k 4k' -c 'write -z -u 32k 4k' -c 'alloc 16k 4k' -c 'read -P 0 16k 4k' -c 'read -P 0 32k 4k' a.qcow
grep -q "^4096/4096 bytes allocated at offset 16 KiB$" out || fail "write -z: $(cat out)"

# Compressed writes; write -s from a file; flush.
expect_rc 0 "$Q" io -c 'write -c -P 5 64k 4k' -c 'read -P 5 64k 4k' -c flush a.qcow
printf 'hello' >src.txt
expect_rc 0 "$Q" io -c 'write -s src.txt 128k 12' -c 'read -v 128k 12' a.qcow
grep -q "hellohellohe" out || fail "write -s: $(cat out)"

# Errors.
expect_rc 1 "$Q" io -c 'read 1M 512' a.qcow
expect_out "read failed: Input/output error"
expect_rc 1 "$Q" io -c 'read 0 abc' a.qcow
expect_out "Parsing error: non-numeric argument, or extraneous/unrecognized suffix -- abc"
expect_rc 1 "$Q" io -c 'write -P 300 0 1' a.qcow
expect_out "300 is not a valid pattern byte"
expect_rc 1 "$Q" io -c 'write -c 0 100' a.qcow
expect_out "100 is not a sector-aligned value for 'count'"
expect_rc 1 "$Q" io -c 'write -z -P 1 0 512' a.qcow
expect_rc 1 "$Q" io -c 'frob' a.qcow
grep -q 'command "frob" not found' err || fail "unknown command"
expect_rc 1 "$Q" io -c 'read' a.qcow
grep -q 'bad argument count 0 to read, expected at least 2 arguments' err || fail "arg count"
expect_rc 1 "$Q" io -r -c 'write 0 512' a.qcow
expect_err "read-only"
expect_rc 0 "$Q" io -r -c 'read 0 512' a.qcow
expect_rc 1 "$Q" io -c 'read 0 512' missing.qcow
expect_err "^qcowkit: missing.qcow: No such file or directory$"
expect_rc 1 "$Q" io -f foo -c 'read 0 512' a.qcow
expect_err "^qcowkit: Unknown file format 'foo'$"

# Commands from standard input.
printf 'write -P 6 0 512\nread -P 6 0 512\n' | "$Q" io a.qcow >out
grep -q "read 512/512 bytes at offset 0" out || fail "stdin commands"

# Raw images.
"$Q" create -q r.raw 64k
expect_rc 0 "$Q" io -f raw -c 'write -P 1 0 1k' -c 'read -P 1 0 1k' -c map -c info r.raw
grep -q "format name: raw" out || fail "raw info"

if have qemu-io && have qemu-img; then
    qemu-img create -q -f qcow q1.qcow 1M
    cp q1.qcow q2.qcow
    cmds=(-c 'write -P 0xab 0 4k' -c 'read -P 0xac 0 512' -c 'read -v 0 40'
          -c 'write -z 8k 4k' -c 'write -P 3 100 1000' -c map -c 'alloc 0 64k'
          -c 'alloc 8k 8k' -c length -c info -c 'read 2M 1' -c 'alloc 2M')
    a=$(qemu-io "${cmds[@]}" q1.qcow 2>&1 | untime || true)
    b=$("$Q" io "${cmds[@]}" q2.qcow 2>&1 | untime || true)
    [ "$a" == "$b" ] || fail "io output differs from qemu-io:
$(diff <(echo "$a") <(echo "$b"))"
    cmp q1.qcow q2.qcow || fail "io left a different image than qemu-io"
fi
echo ok
