#!/bin/bash
# A client that stops in the middle of a write's data holds that write's
# budget, so it is dropped after 30 s without data (NBD_RECV_TIMEOUT).
# With --max-memory=1M a 1 MiB write takes the whole budget: a second
# client's write waits (back-pressure) until the first client is dropped,
# then succeeds and reads back.  Asserts: dropped after 30 to 40 s, with
# the reason given under -v; the second write answered no earlier than
# that and within 10 s of it.  About 32 s: the limit is a constant.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir
requires python3
LOAD=$TESTS_DIR/nbd/loadclient.py

"$Q" create -q -f qcow img.qcow 4M
start_nbd a -t -v -e 0 --max-memory=1M -k "$T/a.sock" img.qcow
A=$PID
timeout 90 python3 "$LOAD" midwrite "$T/a.sock" 1 60 >times ||
    fail "midwrite client"
read -r dropped answered <times
note "stalled writer dropped after $dropped s;" \
    "the other client's write answered after $answered s"
python3 -c "import sys; sys.exit(not 30 <= $dropped <= 40)" ||
    fail "stalled writer dropped after $dropped s (limit 30 s)"
python3 -c "import sys; sys.exit(not $dropped - 1 <= $answered <= $dropped + 10)" ||
    fail "second write answered after $answered s, drop at $dropped s"
grep -q "no data of a write for 30 s" "$T/a.err" ||
    fail "no reason given: $(cat "$T/a.err")"
stop_nbd "$A"
"$Q" io -r -c "read -P 0x22 1M 1M" img.qcow >out 2>&1 || fail "$(cat out)"
grep -q "Pattern verification failed" out && fail "$(cat out)"
echo "midwrite: ok"
