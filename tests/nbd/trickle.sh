#!/bin/bash
# A write whose data trickles in must not hold the memory budget forever
# (hostile review attack3).  With --max-memory=1M one client starts a
# 1 MiB write and sends a byte of it every 5 s: the stall rule (no data
# for 30 s) never fires, so the write keeps the whole budget and a second
# client's 4 KiB read waits.  The read must be answered within 45 s.
# KNOWN TO FAIL: meson marks it should_fail until the server bounds how
# long (or how slowly) a write's data may arrive.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir
requires python3

"$Q" create -q -f qcow img.qcow 64M
start_nbd a -t -e 0 --max-memory=1M -k "$T/a.sock" img.qcow
A=$PID
timeout 120 python3 "$TESTS_DIR/nbd/trickle.py" "$T/a.sock" 5 45 ||
    fail "a trickling write held the budget from another client"
stop_nbd "$A"
echo "trickle: ok"
