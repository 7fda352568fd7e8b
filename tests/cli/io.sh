#!/bin/bash
# qcowkit io: qemu-io's commands, output and exit status.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir

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

# A raw image whose format is probed must not become another format
# through what is written into sector 0 (CVE-2008-2004): qemu-io refuses
# such writes with EPERM, and with -f raw allows them.
magic() { # NAME -> the header bytes, at their offset, in file NAME.hdr
    case $1 in
    qcow) printf 'QFI\xfb\0\0\0\1' ;;
    qcow2) printf 'QFI\xfb\0\0\0\3' ;;
    qed) printf 'QED\0' ;;
    vmdk) printf 'KDMV' ;;
    vmdk3) printf 'COWD' ;;
    vmdkdesc) printf '# Disk DescriptorFile\nversion=1\n' ;;
    vdi) head -c 64 /dev/zero | tr '\0' 'x'; printf '\x7f\x10\xda\xbe' ;;
    vhdx) printf 'vhdxfile' ;;
    vpc) printf 'conectix' ;;
    luks) printf 'LUKS\xba\xbe' ;;
    bochs) printf 'Bochs Virtual HD Image' ;;
    cloop) printf '#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0' ;;
    parallels) printf 'WithoutFreeSpace' ;;
    parallels2) printf 'WithouFreSpacExt' ;;
    esac >"$1.hdr"
}
{ printf 'raw!'; head -c 65532 /dev/urandom; } >probe.orig
for m in qcow qcow2 qed vmdk vmdk3 vmdkdesc vdi vhdx vpc luks bochs cloop \
    parallels parallels2; do
    magic $m
    n=$(stat -c %s $m.hdr)
    cp probe.orig p.raw
    expect_rc 1 "$Q" io -c "write -s $m.hdr 0 $n" p.raw
    expect_out "write failed: Operation not permitted"
    expect_err "^qcowkit: p.raw: .*probed raw image"
    cmp p.raw probe.orig || fail "write -s of a $m header changed p.raw"
    # Whole sectors holding the header.
    cp $m.hdr $m.4k
    truncate -s 4k $m.4k
    expect_rc 1 "$Q" io -c "write -s $m.4k 0 4k" -c "write -c -s $m.4k 0 4k" p.raw
    cmp p.raw probe.orig || fail "a 4k write of a $m header changed p.raw"
    # --image-opts without driver= probes too.
    expect_rc 1 "$Q" io --image-opts -c "write -s $m.hdr 0 $n" \
        file.filename=p.raw
    cmp p.raw probe.orig || fail "--image-opts: a $m header changed p.raw"
    # With the format given, the write is the user's to make.
    expect_rc 0 "$Q" io -f raw -c "write -s $m.hdr 0 $n" p.raw
    cmp -n "$n" p.raw $m.hdr || fail "-f raw: the $m header was not written"
    cp probe.orig p.raw
    expect_rc 0 "$Q" io --image-opts -c "write -s $m.hdr 0 $n" \
        driver=raw,file.filename=p.raw
    cmp -n "$n" p.raw $m.hdr || fail "driver=raw: no $m header"
done
# Partial writes are judged merged with what sector 0 holds: byte by byte,
# the byte that completes the magic is refused.
cp probe.orig p.raw
expect_rc 1 "$Q" io -c 'write -P 0x51 0 1' -c 'write -P 0x46 1 1' \
    -c 'write -P 0x49 2 1' -c 'write -P 0xfb 3 1' p.raw
[ "$(grep -c '^wrote' out)" == 3 ] || fail "partial writes: $(cat out)"
grep -q "^write failed: Operation not permitted$" out || fail "no EPERM"
[ "$(head -c 4 p.raw)" == "QFI" ] && fail "qcow magic completed"
[ "$(head -c 3 p.raw)" == "QFI" ] || fail "harmless partial writes refused"
[ "$("$Q" info p.raw | sed -n 2p)" == "file format: raw" ] || fail "not raw"
# write -z can complete a magic too; writes past sector 0 are free.
printf 'QED\1' | dd of=p.raw conv=notrunc status=none
expect_rc 1 "$Q" io -c 'write -z 3 1' p.raw
expect_rc 0 "$Q" io -c 'write -P 0x11 512 512' -c 'write -s qcow.hdr 512 8' p.raw
if have qemu-io; then
    cp probe.orig q.raw
    a=$(qemu-io -c 'write -s qcow.hdr 0 8' q.raw 2>/dev/null | untime || true)
    cp probe.orig p.raw
    b=$("$Q" io -c 'write -s qcow.hdr 0 8' p.raw 2>/dev/null | untime || true)
    [ "$a" == "$b" ] || fail "probed raw: qemu-io says '$a', qcowkit '$b'"
fi

# -s / --snapshot: writes go to a temporary overlay in $TMPDIR, deleted at
# exit; the image is only read, and stays byte-identical.
mkdir -p snaptmp
"$Q" create -q -f qcow snap.qcow 1M
"$Q" io -c 'write -q -P 0x11 0 1M' snap.qcow
head -c 1000000 /dev/urandom >snap.raw
for img in snap.qcow snap.raw; do
    cp $img $img.orig
    for opt in -s --snapshot; do
        expect_rc 0 env TMPDIR="$T/snaptmp" "$Q" io $opt \
            -c 'write -P 0xab 0 64k' -c 'read -P 0xab 0 64k' \
            -c 'write -P 0xcd 100001 3' -c 'read -P 0xcd 100001 3' $img
        [ "$(grep -c '^wrote\|^read' out)" == 4 ] || fail "$opt $img: $(cat out)"
        cmp $img $img.orig || fail "io $opt wrote to $img"
        [ -z "$(ls -A snaptmp)" ] || fail "io $opt left $(ls snaptmp)"
    done
    # What is not written reads from the image.
    want=$("$Q" io -r -c 'read -v 4k 16' $img | head -1)
    expect_rc 0 env TMPDIR="$T/snaptmp" "$Q" io -s -c 'write -z 0 4k' \
        -c 'read -P 0 0 4k' -c 'read -v 4k 16' $img
    [ "$(sed -n 5p out)" == "$want" ] || fail "-s $img: unwritten data: $(cat out)"
done
# A failed command, stdin mode and a signal leave nothing behind either.
expect_rc 1 env TMPDIR="$T/snaptmp" "$Q" io -s -c 'read -P 0x99 0 512' snap.qcow
echo 'write -P 0x42 0 512' | TMPDIR="$T/snaptmp" "$Q" io -s snap.qcow >out
grep -q "^qcowkit> wrote 512/512" out || fail "-s from stdin: $(cat out)"
mkfifo snapfifo
TMPDIR="$T/snaptmp" "$Q" io -s snap.qcow <snapfifo >out 2>&1 &
pid=$!
exec 7>snapfifo
echo 'write -P 0x42 0 512' >&7
for i in $(seq 50); do grep -q wrote out && break; sleep 0.1; done
# While it runs the image is shared for reading only.
expect_rc 0 "$Q" io -r -c 'read -P 0x11 0 512' snap.qcow
expect_rc 1 "$Q" io -c 'write -P 0x43 0 512' snap.qcow
kill -TERM $pid
exec 7>&-
wait $pid || true
[ -z "$(ls -A snaptmp)" ] || fail "SIGTERM left $(ls snaptmp)"
cmp snap.qcow snap.qcow.orig || fail "io -s wrote to the image"
# Errors name the image, and an unusable TMPDIR is one line too.
expect_rc 1 env TMPDIR="$T/snaptmp" "$Q" io -s -c 'read 0 1' missing.qcow
expect_err "^qcowkit: missing.qcow: "
expect_rc 1 env TMPDIR="$T/nodir" "$Q" io -s -c 'read 0 1' snap.qcow
expect_err "^qcowkit: $T/nodir/qcowkit-snapshot\..*: cannot create"
if have qemu-io; then
    cmds=(-c 'write -P 0xab 0 64k' -c 'read -P 0xab 0 64k' -c 'read -P 0x11 64k 4k'
          -c 'write -z 8k 4k' -c 'map' -c length)
    a=$(qemu-io -f qcow -s "${cmds[@]}" snap.qcow 2>&1 | untime || true)
    b=$("$Q" io -f qcow -s "${cmds[@]}" snap.qcow 2>&1 | untime || true)
    [ "$a" == "$b" ] || fail "io -s output differs from qemu-io -s:
$(diff <(echo "$a") <(echo "$b"))"
    cmp snap.qcow snap.qcow.orig || fail "io -s wrote to the image"
fi

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
