#!/bin/bash
# Idle clients cost no threads (issue 9, item 5): with -e 0, 400 clients
# through the handshake and then idle keep the server at 64 threads at
# most (it was 1 + 8 per client: 3,601), and a new client is served at
# once (nbdinfo and qemu-io, each within 5 s) while they are connected.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir
requires python3 nbdinfo qemu-io
LOAD=$TESTS_DIR/nbd/loadclient.py
N=400
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt $((N + 100)) ]; then
    skip "the hard limit of open files ($hard) is below $((N + 100))"
fi
ulimit -Sn "$hard"

"$Q" create -q -f qcow img.qcow 4M
"$Q" io -c 'write -P 0x5a 0 64k' img.qcow >/dev/null
start_nbd a -e 0 -t -k "$T/a.sock" img.qcow
A=$PID

python3 "$LOAD" idle "$T/a.sock" "$N" ready stop 2>idle.err &
IDLE=$!
for _ in $(seq 600); do
    [ -e ready ] && break
    kill -0 "$IDLE" 2>/dev/null || fail "idle clients: $(cat idle.err)"
    sleep 0.1
done
[ -e ready ] || fail "$N clients were not through the handshake in 60 s"
sleep 0.5
threads=$(ls /proc/"$A"/task | wc -l)
note "$N idle clients: $threads server threads"
[ "$threads" -le 64 ] || fail "$threads threads for $N idle clients (max 64)"

ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
start=$(ms)
timeout 20 nbdinfo --size "$(uri a)" >size || fail "nbdinfo with $N idle clients"
[ "$(cat size)" = 4194304 ] || fail "nbdinfo size $(cat size)"
took=$(($(ms) - start))
note "nbdinfo served in $took ms"
[ "$took" -lt 5000 ] || fail "nbdinfo took $took ms (max 5000)"
start=$(ms)
timeout 20 qemu-io -r -f raw "$(uri a)" -c 'read -P 0x5a 0 64k' >qio 2>&1 ||
    fail "qemu-io with $N idle clients: $(cat qio)"
grep -q "Pattern verification failed" qio && fail "qemu-io: $(cat qio)"
took=$(($(ms) - start))
note "qemu-io served in $took ms"
[ "$took" -lt 5000 ] || fail "qemu-io took $took ms (max 5000)"

touch stop
wait "$IDLE" || fail "idle clients: $(cat idle.err)"
kill -0 "$A" || fail "server died"
stop_nbd "$A"
echo "idle: ok"
