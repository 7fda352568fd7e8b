#!/bin/bash
# A write whose data trickles in must not hold the memory budget forever
# (hostile review attack3).  With --max-memory=1M one client starts a
# 1 MiB write and sends a byte of it every 5 s: the stall rule (no data
# for 30 s) never fires; the rate rule must (while another client waits
# for budget, a write's data gets 30 s plus 1 s per MiB).  The second
# client's 4 KiB read must be answered within 45 s, and the server must
# say why it dropped the trickler.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir
requires python3

"$Q" create -q -f qcow img.qcow 64M
start_nbd a -t -e 0 -v --max-memory=1M -k "$T/a.sock" img.qcow
A=$PID
timeout 120 python3 "$TESTS_DIR/nbd/trickle.py" "$T/a.sock" 5 45 ||
    fail "a trickling write held the budget from another client"
grep -q "came too slowly" "$T/a.err" ||
    fail "the server did not say why it dropped the trickler: $(cat "$T/a.err")"
stop_nbd "$A"
echo "trickle: ok"
