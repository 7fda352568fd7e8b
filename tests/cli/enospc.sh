#!/usr/bin/env bash
# A convert that runs out of space stops with a clear message, and leaves
# an image that opens and checks without corruption (leaks are allowed).
# Needs a small tmpfs, so root and a working mount; else skipped.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir

mkdir mnt
if ! mount -t tmpfs -o size=3M tmpfs mnt 2>/dev/null; then
    echo "cannot mount a small tmpfs here (not root, or no mount rights); skipping" >&2
    exit 77
fi
trap 'umount "$T/mnt" 2>/dev/null; rm -rf "$T"' EXIT

head -c $((8 << 20)) /dev/urandom >src.raw

for opt in "" "-c" "-m 1"; do
    rm -f mnt/out.qcow
    # shellcheck disable=SC2086
    expect_rc 1 "$Q" convert $opt -O qcow src.raw mnt/out.qcow
    [ "$(wc -l <err)" = 1 ] || fail "convert $opt: not one line: $(cat err)"
    grep -q "No space left on device" err ||
        fail "convert $opt: the message does not say what happened: $(cat err)"
    rc=0
    "$Q" check mnt/out.qcow >out 2>err || rc=$?
    case $rc in
    0 | 3) ;;
    *) fail "convert $opt: check exited $rc: $(cat out err)" ;;
    esac
    # What was written reads back as the source; the rest reads as zeros.
    expect_rc 0 "$Q" convert -O raw mnt/out.qcow got.raw
    python3 - src.raw got.raw <<'PY' || fail "convert $opt: data read back is neither source nor zeros"
import sys
src = open(sys.argv[1], "rb").read()
got = open(sys.argv[2], "rb").read()
assert len(src) == len(got)
for i in range(0, len(src), 512):
    g = got[i:i + 512]
    assert g == src[i:i + 512] or g == bytes(512), i
PY
done
echo "enospc: ok"
