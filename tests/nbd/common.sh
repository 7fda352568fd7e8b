# Sourced by the NBD server tests: $Q is the qcowkit command, $T a scratch
# folder (sockets, images), removed on exit with every server started by
# start_nbd killed first.  Exit 77 means SKIP to Meson.
set -euo pipefail

Q=${QCOWKIT:-}
if [ -z "$Q" ] || [ ! -x "$Q" ]; then
    echo "QCOWKIT is not set to the qcowkit command; skipping" >&2
    exit 77
fi
T=$(mktemp -d)
SERVERS=()

cleanup() {
    local p i
    for p in "${SERVERS[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${SERVERS[@]}"; do
        for i in $(seq 50); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$p" 2>/dev/null || true
    done
    rm -rf "$T"
}
trap cleanup EXIT
cd "$T"

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# need CMD...: skip the test unless every CMD is installed.
need() {
    local c
    for c; do
        if ! command -v "$c" >/dev/null 2>&1; then
            echo "$c is not installed; skipping" >&2
            exit 77
        fi
    done
}

# start_nbd NAME ARGS...: run `qcowkit nbd --pid-file=NAME.pid ARGS...` in
# the background and wait (10 s at most) for it to listen.  Sets $PID;
# its stderr goes to NAME.err.
start_nbd() {
    local name=$1 i
    shift
    rm -f "$T/$name.pid"
    "$Q" nbd --pid-file="$T/$name.pid" "$@" 2>"$T/$name.err" &
    PID=$!
    SERVERS+=("$PID")
    for i in $(seq 100); do
        [ -s "$T/$name.pid" ] && return 0
        if ! kill -0 "$PID" 2>/dev/null; then
            cat "$T/$name.err" >&2
            fail "qcowkit nbd $* exited before listening"
        fi
        sleep 0.1
    done
    fail "qcowkit nbd $* did not listen within 10 s"
}

# wait_exit PID: wait (10 s at most) for a server to exit; its status is
# in $RC.
wait_exit() {
    local i
    for i in $(seq 100); do
        if ! kill -0 "$1" 2>/dev/null; then
            RC=0
            wait "$1" || RC=$?
            return 0
        fi
        sleep 0.1
    done
    fail "server $1 still running after 10 s"
}

# stop_nbd PID: SIGTERM, then wait; a clean stop exits 0.
stop_nbd() {
    kill -TERM "$1"
    wait_exit "$1"
    [ "$RC" = 0 ] || fail "server $1 exited $RC after SIGTERM"
}

# uri NAME [EXPORT]: the URI of the unix socket NAME.sock.
uri() {
    echo "nbd+unix:///${2:-}?socket=$T/$1.sock"
}

# A python able to import libnbd's module, or nothing.
nbd_python() {
    local p
    for p in python3 /usr/bin/python3; do
        if "$p" -c 'import nbd' >/dev/null 2>&1; then
            echo "$p"
            return 0
        fi
    done
    return 0
}
