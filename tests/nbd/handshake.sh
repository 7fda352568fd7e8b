#!/bin/bash
# One deadline for the whole handshake (issue 9, item 6; CVE-2024-7409 in
# qemu-nbd): a client trickling a byte every 3 s (which a per-read timeout
# never drops) is dropped within --handshake-limit, default 10 s, and with
# the default -e 1 a second client waiting behind it is served within 15 s
# of connecting.  At most 16 connections are in the handshake at once:
# 30 silent ones keep the threads bounded and are all dropped in turn.
# --handshake-limit=0 lets a client take its time.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
make_tmpdir
requires python3 nbdinfo
LOAD=$TESTS_DIR/nbd/loadclient.py
ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
# Each case runs in a subshell: end its own servers when it exits.
end_case_servers() {
    local p
    for p in "${SERVERS[@]}"; do end_process "$p"; done
}
trap_case() { trap end_case_servers EXIT; }

case_default() {
    trap_case
    "$Q" create -q -f qcow img.qcow 4M
    start_nbd def -t -v -k "$PWD/a.sock" img.qcow
    python3 "$LOAD" trickle "$PWD/a.sock" 3 20 >dropped 2>trickle.err &
    local tr=$! start took
    sleep 1
    start=$(ms)
    timeout 30 nbdinfo --size "nbd+unix:///?socket=$PWD/a.sock" >size ||
        fail "second client not served"
    took=$(($(ms) - start))
    wait "$tr" || fail "trickling client: $(cat trickle.err)"
    note "trickler dropped after $(cat dropped) s;" \
        "second client served $took ms after connecting"
    python3 -c "import sys; sys.exit(not 8 <= float('$(cat dropped)') <= 13)" ||
        fail "trickler dropped after $(cat dropped) s (limit 10 s)"
    [ "$took" -lt 15000 ] || fail "second client waited $took ms"
    [ "$(cat size)" = 4194304 ] || fail "size $(cat size)"
    grep -q "handshake took longer than 10 s" "$T/def.err" ||
        fail "no reason given: $(cat "$T/def.err")"
    stop_nbd "$PID"
}

case_cap() {
    local pid threads
    trap_case
    "$Q" create -q -f qcow img.qcow 4M
    start_nbd cap -t -e 0 --handshake-limit=2 -k "$PWD/a.sock" img.qcow
    pid=$PID
    python3 "$LOAD" stall "$PWD/a.sock" 30 15 >dropped 2>stall.err &
    local st=$!
    sleep 1
    threads=$(ls /proc/"$pid"/task | wc -l)
    note "30 silent clients: $threads server threads"
    [ "$threads" -le 40 ] || fail "$threads threads with 30 silent clients"
    wait "$st" || fail "silent clients: $(cat stall.err)"
    note "30 silent clients dropped after $(cat dropped) s"
    python3 -c "import sys; sys.exit(not float('$(cat dropped)') <= 8)" ||
        fail "silent clients dropped after $(cat dropped) s (limit 2 s)"
    timeout 20 nbdinfo --size "nbd+unix:///?socket=$PWD/a.sock" >size ||
        fail "client after the silent ones not served"
    stop_nbd "$pid"
}

case_none() {
    trap_case
    "$Q" create -q -f qcow img.qcow 4M
    start_nbd none --handshake-limit=0 -k "$PWD/a.sock" img.qcow
    timeout 30 python3 "$LOAD" late "$PWD/a.sock" 12 ||
        fail "a slow handshake was dropped with --handshake-limit=0"
    wait_exit "$PID"
    [ "$RC" = 0 ] || fail "server exited $RC"
}

case_bad_option() {
    "$Q" create -q -f qcow img.qcow 4M
    expect_rc 1 "$Q" nbd --handshake-limit=-1 -k "$PWD/a.sock" img.qcow
    expect_err "Invalid handshake limit"
    expect_rc 1 "$Q" nbd --handshake-limit=ten -k "$PWD/a.sock" img.qcow
    expect_err "Invalid handshake limit"
}

run_case default case_default
run_case cap case_cap
run_case none case_none
run_case bad-option case_bad_option
finish
