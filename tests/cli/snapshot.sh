#!/bin/bash
# qcowkit snapshot against qemu-img snapshot: neither qcow nor raw has
# internal snapshots, so the list is empty (no output, exit 0) and -a, -c
# and -d fail with QEMU's message and exit code, leaving the image as it
# was.  Option errors match too.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir
have qemu-img || { echo "qemu-img missing" >&2; exit 77; }

qemu-img create -q -f qcow a.qcow 1M
qemu-img create -q -f raw a.raw 1M
qemu-img create -q -f qcow -b a.qcow -F qcow over.qcow 1M
: >empty.raw

# same_as_qemu ARGS...: exit code, stdout and the last error line of
# stderr agree (program name aside; QEMU's probing warnings and its hint
# to --help are not error lines).
same_as_qemu() {
    local qrc=0 krc=0
    qemu-img snapshot "$@" >q.out 2>q.err || qrc=$?
    "$Q" snapshot "$@" >k.out 2>k.err || krc=$?
    [ "$qrc" = "$krc" ] || fail "snapshot $*: exit $krc, qemu-img $qrc"
    cmp -s q.out k.out || fail "snapshot $*: stdout '$(cat k.out)', qemu-img '$(cat q.out)'"
    [ "$(sed -n 's/^qemu-img: //p' q.err | tail -n1)" == \
        "$(sed -n 's/^qcowkit: //p' k.err | tail -n1)" ] ||
        fail "snapshot $*: stderr '$(cat k.err)', qemu-img '$(cat q.err)'"
}

for img in a.qcow a.raw over.qcow empty.raw; do
    cp "$img" before
    for op in -l "" "-q -l" "-U -l" "--force-share -l" \
        "-a s1" "-c s1" "-d s1" "-q -c snap" "-c s1 -U" "-a s1 -U" \
        "-l -a s1" "-d s1 -l" "-f raw -l" "-x"; do
        # shellcheck disable=SC2086
        same_as_qemu $op "$img"
    done
    cmp -s before "$img" || fail "snapshot operations changed $img"
done
# The list prints nothing, really (not even a header), and exits 0.
expect_rc 0 "$Q" snapshot -l a.qcow
expect_out ""
[ ! -s err ] || fail "snapshot -l wrote to stderr: $(cat err)"
# --image-opts names the format.
expect_rc 0 "$Q" snapshot --image-opts -l driver=qcow,file.filename=a.qcow
expect_rc 1 "$Q" snapshot --image-opts -c s driver=raw,file.filename=a.raw
expect_err "^qcowkit: Could not create snapshot 's': -95 \(Operation not supported\)$"

# Arguments: the exit code of qemu-img (messages partly differ in wording).
for args in "-l" "-l a.qcow b.qcow" "-a" "-l missing.qcow"; do
    qrc=0 krc=0
    # shellcheck disable=SC2086
    qemu-img snapshot $args >/dev/null 2>&1 || qrc=$?
    # shellcheck disable=SC2086
    "$Q" snapshot $args >/dev/null 2>err || krc=$?
    [ "$qrc" = "$krc" ] || fail "snapshot $args: exit $krc, qemu-img $qrc"
    grep -q '^qcowkit: ' err || fail "snapshot $args: no error message"
done
# A missing backing file and an encrypted image without its key fail on
# open, as in QEMU.
qemu-img create -q -f qcow -u -b gone.qcow -F qcow orphan.qcow 1M
expect_rc 1 "$Q" snapshot -l orphan.qcow
grep -q "gone.qcow" err || fail "missing backing file not named: $(cat err)"
qemu-img create -q -f qcow --object secret,id=s,data=pw \
    -o encrypt.format=aes,encrypt.key-secret=s enc.qcow 1M
expect_rc 1 "$Q" snapshot -l enc.qcow
grep -q "encrypt.key-secret" err || fail "encrypted image: $(cat err)"
expect_rc 0 "$Q" snapshot --object secret,id=s,data=pw --image-opts -l \
    driver=qcow,file.filename=enc.qcow,encrypt.key-secret=s
echo "snapshot: matches qemu-img"
