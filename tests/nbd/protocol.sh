#!/bin/bash
# The NBD protocol at the byte level (protocol.py, no libnbd needed):
# error values, simple and structured replies, block status, option
# errors, and hostile clients that must be dropped without hurting the
# server, which afterwards still serves and exits cleanly.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir
requires python3
PY=$(dirname "$0")/protocol.py
[ -f "$PY" ] || PY=$OLDPWD/$(dirname "$0")/protocol.py

"$Q" create -q -f qcow rw.qcow 4M
"$Q" create -q -f qcow ro.qcow 4M
start_nbd a -t -e 0 -k "$T/a.sock" rw.qcow
A=$PID
start_nbd b -t -e 0 -r -k "$T/b.sock" ro.qcow
B=$PID
timeout 300 python3 "$PY" "$T/a.sock" "$T/b.sock" || fail "protocol.py"
kill -0 "$A" || fail "server died"
stop_nbd "$A"
stop_nbd "$B"
"$Q" check rw.qcow >/dev/null || fail "check"
echo "protocol: ok"
