#!/bin/bash
# The shared worker pool under load (also run under TSan, suite threads):
# 6 clients at once with 64 requests each in flight (writes, reads,
# flushes, block status), every reply checked, while 2 rude clients hang
# up with reads in flight; --max-memory=2M keeps connections pausing and
# resuming.  Then nbdcopy with 4 connections.  The server stays up and
# stops cleanly (exit 0: no sanitizer report).
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir
requires python3
LOAD=$TESTS_DIR/nbd/loadclient.py

"$Q" create -q -f qcow img.qcow 16M
start_nbd a -t -e 0 --max-memory=2M -v -k "$T/a.sock" img.qcow
A=$PID
timeout 240 python3 "$LOAD" mixed "$T/a.sock" 6 4 || fail "mixed clients"
kill -0 "$A" || fail "server died: $(cat a.err)"
if have nbdcopy; then
    "$Q" create -q -f raw src.raw 8M
    make_data src.raw 8388608 7
    timeout 120 nbdcopy src.raw "$(uri a)" || fail "nbdcopy in"
    timeout 120 nbdcopy "$(uri a)" back.raw || fail "nbdcopy out"
    cmp <(head -c 8388608 back.raw) src.raw || fail "nbdcopy data"
fi
stop_nbd "$A"
"$Q" check img.qcow >/dev/null || fail "check"
echo "pool: ok"
