#!/bin/bash
# Memory over all clients is bounded (issue 9, item 7): 8 connections
# each send 8 writes of 8 MiB without reading a reply (512 MiB at once;
# each connection alone may hold 64 MiB).  With --max-memory=64M the
# server stops reading instead of failing: its peak resident memory
# (VmHWM) stays under what it used idle + 64 MiB + a 24 MiB margin, and
# every write succeeds and reads back.  A bad --max-memory is refused.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir
requires python3
LOAD=$TESTS_DIR/nbd/loadclient.py
# Resident memory means nothing under a sanitizer (shadow, quarantine):
# there only the completion of every request is checked.
syms="$(ldd "$Q" 2>/dev/null || true) $(nm "$Q" 2>/dev/null || true)"
if grep -Eq 'lib[at]san|__[at]san_init' <<<"$syms"; then
    SANITIZED=1
else
    SANITIZED=0
fi

expect_rc 1 "$Q" nbd --max-memory=100k -k "$T/x.sock" img.qcow
expect_err "Invalid memory size '100k'"
expect_rc 1 "$Q" nbd --max-memory=lots -k "$T/x.sock" img.qcow
expect_err "Invalid memory size 'lots'"

"$Q" create -q -f qcow img.qcow 64M
start_nbd a -t -e 0 --max-memory=64M -k "$T/a.sock" img.qcow
A=$PID
idle=$(awk '/^VmRSS/ {print $2}' /proc/"$A"/status)
timeout 120 python3 "$LOAD" flood "$T/a.sock" 8 8 8 || fail "flood client"
peak=$(awk '/^VmHWM/ {print $2}' /proc/"$A"/status)
note "idle ${idle} KiB, peak ${peak} KiB with --max-memory=64M" \
    "(8 x 8 x 8 MiB writes in flight)"
stop_nbd "$A"
if [ "$SANITIZED" = 0 ]; then
    limit=$((idle + (64 + 24) * 1024))
    [ "$peak" -le "$limit" ] || fail "peak RSS $peak KiB > $limit KiB"
fi
for i in 0 1 2 3 4 5 6 7; do
    "$Q" io -r -c "read -P $((0x41 + i)) $((i * 8))M 8M" img.qcow >out 2>&1 ||
        fail "image region $i: $(cat out)"
    grep -q "Pattern verification failed" out && fail "region $i: $(cat out)"
done
"$Q" check img.qcow >/dev/null || fail "check"
echo "memory: ok"
