# shellcheck shell=bash
#
# functions.sh - the one helper library of the shell tests (tests/cli,
# tests/nbd, tests/fuse, tests/interop, tests/install).
#
# Usage, at the top of a test script:
#
#     set -euo pipefail
#     source "$(dirname "$0")/../harness/functions.sh"
#     requires_qcowkit       # $QCOWKIT, also as $Q; skip if not built
#     requires qemu-img      # skip unless every command is installed
#     enter_tmpdir           # cd into a new $T, removed again on exit
#
# Exit status convention (as in meson and automake): 0 pass, 1 fail,
# 77 skip.
#
# Environment:
#   QCOWKIT    the qcowkit command under test.  Meson sets it; a script
#              run by hand without it uses build/qcowkit of the source
#              tree this file is in (requires_qcowkit says so on stderr,
#              or, if there is none, skips saying how to build it).
#   TESTS_DIR  the tests/ folder of the source tree (default: found from
#              this file's own path)
#   VERBOSE=1  echo every command run through `run`
#
# This file sets no shell options: each script chooses its own (most use
# set -euo pipefail).

QK_SOURCE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [ -z "${TESTS_DIR:-}" ]; then
    TESTS_DIR=$QK_SOURCE_ROOT/tests
fi
QK_FOUND_QCOWKIT=
if [ -z "${QCOWKIT:-}" ]; then
    # Run by hand: the command meson builds in build/ of this tree.
    if [ -x "$QK_SOURCE_ROOT/build/qcowkit" ]; then
        QCOWKIT=$QK_SOURCE_ROOT/build/qcowkit
        QK_FOUND_QCOWKIT=1
    fi
elif [ "${QCOWKIT#/}" = "$QCOWKIT" ] && [ "${QCOWKIT#*/}" != "$QCOWKIT" ] &&
    [ -d "$(dirname "$QCOWKIT")" ]; then
    # A relative path (QCOWKIT=build/qcowkit): absolute, since tests cd.
    QCOWKIT=$(cd "$(dirname "$QCOWKIT")" && pwd)/$(basename "$QCOWKIT")
fi
QCOWKIT=${QCOWKIT:-}
Q=$QCOWKIT
export TESTS_DIR QCOWKIT

# The name of the running test, for messages.
TEST_NAME=${0##*/}
TEST_NAME=${TEST_NAME%.sh}

# ------------------------------------------------------------- messages

# fail MSG...: report a failure on stderr and exit 1.
fail() {
    echo "$TEST_NAME: FAIL: $*" >&2
    exit 1
}

# skip MSG...: report why the test cannot run and exit 77.
skip() {
    echo "$TEST_NAME: SKIP: $*" >&2
    exit 77
}

# note MSG...: a progress line on stdout.
note() {
    echo "$TEST_NAME: $*"
}

# --------------------------------------------------------- requirements

# have CMD: true if CMD is runnable (for tests that do without it).
have() {
    command -v "$1" >/dev/null 2>&1
}

# requires CMD...: skip the test (exit 77) unless every CMD is runnable.
requires() {
    local c
    for c in "$@"; do
        have "$c" || skip "$c is not installed"
    done
}

# requires_qcowkit: skip unless $QCOWKIT is an executable file.
requires_qcowkit() {
    if [ -z "$QCOWKIT" ]; then
        skip "QCOWKIT is not set and $QK_SOURCE_ROOT/build/qcowkit" \
            "does not exist (build it: meson setup build && ninja -C build)"
    fi
    [ -x "$QCOWKIT" ] || skip "QCOWKIT=$QCOWKIT is not an executable file"
    if [ -n "$QK_FOUND_QCOWKIT" ]; then
        echo "$TEST_NAME: QCOWKIT is not set; using $QCOWKIT" >&2
    fi
}

# ------------------------------------------------------- scratch folder

SERVERS=() # processes to end on exit (start_nbd adds its servers)

# The EXIT trap of make_tmpdir: end every process in SERVERS (SIGTERM,
# then SIGKILL after 5 s), then remove $T.
# end_process PID: SIGTERM, up to 5 s to go, then SIGKILL (for cleanups).
end_process() {
    local i
    kill -TERM "$1" 2>/dev/null || return 0
    for i in $(seq 50); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null || true
}

_harness_exit() {
    local p
    for p in "${SERVERS[@]}"; do
        end_process "$p"
    done
    rm -rf "$T"
}

# make_tmpdir: create a private temporary folder, store its name in $T
# and remove it (with everything in it) when the script exits, whatever
# the reason.  Must be called in the main shell, not in $(...).  A script
# that sets its own EXIT trap must remove $T itself.
make_tmpdir() {
    T=$(mktemp -d "${TMPDIR:-/tmp}/${TEST_NAME}.XXXXXX") ||
        fail "cannot create a temporary folder"
    trap _harness_exit EXIT
    export T
}

# enter_tmpdir: make_tmpdir, then work in it.
enter_tmpdir() {
    make_tmpdir
    cd "$T"
}

# ------------------------------------------------------- command checks

# expect_rc CODE CMD... : run CMD, check its exit status; output in the
# files out and err (of the current folder).
expect_rc() {
    local want=$1 rc=0
    shift
    "$@" >out 2>err || rc=$?
    if [ "$rc" != "$want" ]; then
        echo "--- stdout:" >&2; cat out >&2
        echo "--- stderr:" >&2; cat err >&2
        fail "'$*' exited $rc, expected $want"
    fi
}

# expect_out TEXT: stdout of the last expect_rc is exactly TEXT.
expect_out() {
    local got
    got=$(cat out)
    [ "$got" == "$1" ] || fail "stdout was:
$got
expected:
$1"
}

# expect_err PATTERN: stderr of the last expect_rc matches PATTERN (grep -E),
# and is a single line.
expect_err() {
    grep -Eq -- "$1" err || fail "stderr '$(cat err)' does not match '$1'"
    [ "$(wc -l <err)" -eq 1 ] || fail "stderr is not one line: $(cat err)"
}

# untime: drop qemu-io's timing numbers (a filter).
untime() {
    sed -E 's/; [0-9:.]+ sec \(.*\)$/; TIME/'
}

# run CMD ARGS...: run a command; on failure report it with its output
# and exit 1.  Output is shown only with VERBOSE=1 or on failure.
run() {
    local out rc=0
    [ "${VERBOSE:-0}" = 1 ] && echo "+ $*" >&2
    out=$("$@" 2>&1) || rc=$?
    if [ "$rc" -ne 0 ]; then
        printf '%s\n' "$out" >&2
        fail "command failed (exit $rc): $*"
    fi
    [ "${VERBOSE:-0}" = 1 ] && [ -n "$out" ] && printf '%s\n' "$out" >&2
    return 0
}

# qk ARGS...: run the qcowkit command under test via `run`.
qk() {
    run "$QCOWKIT" "$@"
}

# same_files A B WHAT: fail unless files A and B are byte-identical.
same_files() {
    local a=$1 b=$2 what=${3:-"$1 vs $2"}
    local out
    if ! out=$(cmp "$a" "$b" 2>&1); then
        fail "$what: files differ: $out"
    fi
}

# ---------------------------------------------------------------- cases
#
# A script may run several independent cases and report every failing
# one instead of stopping at the first:
#
#     case_plain() { ...; fail "..." ...; }
#     run_case plain case_plain [ARGS...]
#     ...
#     finish
#
# Each case runs in a subshell with `set -e`, in its own empty folder
# $T/NAME (make_tmpdir must have been called).  A case that exits 77
# counts as skipped.  finish exits 1 if any case failed, 77 if every
# case was skipped, else 0.

FAILED_CASES=()
SKIPPED_CASES=()
PASSED_CASES=()

run_case() {
    local name=$1 rc start=$SECONDS
    shift
    mkdir -p "$T/$name"
    set +e
    (
        set -e
        cd "$T/$name"
        "$@"
    )
    rc=$?
    set -e
    case $rc in
    0) PASSED_CASES+=("$name"); note "ok: $name ($((SECONDS - start)) s)" ;;
    77) SKIPPED_CASES+=("$name"); note "skipped: $name" ;;
    *) FAILED_CASES+=("$name"); note "FAILED: $name" ;;
    esac
}

finish() {
    note "${#PASSED_CASES[@]} passed, ${#FAILED_CASES[@]} failed," \
        "${#SKIPPED_CASES[@]} skipped"
    if [ "${#FAILED_CASES[@]}" -gt 0 ]; then
        echo "$TEST_NAME: failed cases: ${FAILED_CASES[*]}" >&2
        exit 1
    fi
    if [ "${#PASSED_CASES[@]}" -eq 0 ] && [ "${#SKIPPED_CASES[@]}" -gt 0 ]; then
        exit 77
    fi
    exit 0
}

# ------------------------------------------------------- random writes
#
# gen_writes SEED SIZE COUNT [MAXSHIFT]: print COUNT lines "OFFSET LENGTH
# PATTERN" describing writes inside an image of SIZE bytes: lengths from 1
# byte up to 2^MAXSHIFT bytes (default 22, 4 MiB) spread over every order
# of magnitude, offsets anywhere (so mostly unaligned), patterns 0x01..0xff.
# The sequence depends only on the arguments (bash $RANDOM, seeded).
gen_writes() {
    local seed=$1 size=$2 count=$3 maxshift=${4:-22}
    local i len off pat shift r
    RANDOM=$seed
    for ((i = 0; i < count; i++)); do
        shift=$((RANDOM % (maxshift + 1)))
        r=$(((RANDOM << 15) | RANDOM))
        len=$((1 + r % (1 << shift)))
        [ "$len" -gt "$size" ] && len=$size
        r=$(((RANDOM << 30) | (RANDOM << 15) | RANDOM))
        off=$((r % (size - len + 1)))
        pat=$((1 + RANDOM % 255))
        printf '%d %d 0x%02x\n' "$off" "$len" "$pat"
    done
}

# io_args FILE [plain]: turn "OFFSET LENGTH PATTERN [c]" lines (as
# gen_writes prints them; a fourth field "c" marks a compressed write)
# into qemu-io arguments, one `-c 'write [-c] -P PATTERN OFFSET LENGTH'`
# per line, stored in the array IO_ARGS.  With "plain", compressed writes
# become ordinary writes (for a raw reference image).
io_args() {
    local off len pat c flag
    IO_ARGS=()
    while read -r off len pat c; do
        flag=
        if [ "$c" = c ] && [ "${2:-}" != plain ]; then flag="-c "; fi
        IO_ARGS+=(-c "write $flag-P $pat $off $len")
    done <"$1"
}

# ------------------------------------------------------ QEMU interop

# qemu_raw IMG OUT: QEMU's reading of IMG (whole backing chain), as raw.
qemu_raw() {
    run qemu-img convert -O raw "$1" "$2"
}

# qk_raw IMG OUT: qcowkit's reading of IMG, as raw.
qk_raw() {
    rm -f "$2"
    run "$QCOWKIT" convert -O raw "$1" "$2"
}

# qemu_compress SRC DST [QEMU-IMG-CONVERT-ARGS...]: qemu-img convert -c
# -O qcow.  QEMU 7.2 may exit 1, silently, after writing a good image;
# that is accepted, any message or other status is not.
qemu_compress() {
    local src=$1 dst=$2 out rc=0
    shift 2
    out=$(qemu-img convert -c -O qcow "$@" "$src" "$dst" 2>&1) || rc=$?
    if [ "$rc" -ne 0 ] && ! { [ "$rc" -eq 1 ] && [ -z "$out" ]; }; then
        printf '%s\n' "$out" >&2
        fail "qemu-img convert -c -O qcow $src $dst failed (exit $rc)"
    fi
}

# same_reading IMG [REF]: qcowkit and QEMU must read IMG identically
# (both convert it to raw, then cmp); with REF, also identical to REF.
same_reading() {
    local img=$1 ref=${2:-} tag
    tag=$(basename "$img")
    qemu_raw "$img" "$img.qemu.raw"
    qk_raw "$img" "$img.qk.raw"
    same_files "$img.qemu.raw" "$img.qk.raw" \
        "$img: qemu-img convert -O raw vs qcowkit convert -O raw"
    if [ -n "$ref" ]; then
        same_files "$ref" "$img.qemu.raw" "$img: QEMU's reading vs expected $ref"
    fi
    rm -f "$img.qemu.raw" "$img.qk.raw"
}

# qemu_same IMG REF: `qemu-img compare` must call IMG and the raw image
# REF identical.
qemu_same() {
    local out rc=0
    out=$(qemu-img compare -F raw "$1" "$2" 2>&1) || rc=$?
    if [ "$rc" -ne 0 ] || [ "$out" != "Images are identical." ]; then
        printf '%s\n' "$out" >&2
        fail "qemu-img compare $1 $2: exit $rc, not identical"
    fi
}

# make_data FILE SIZE SEED [KIND]: write SIZE bytes of test data to FILE,
# the same for the same arguments.  KIND: random, zero, text, lowent (four
# symbols: compressible, but not trivially), or mix (the default: runs of
# all four, of lengths from 1 byte to 300 KB).  Needs python3.
make_data() {
    python3 - "$@" <<'PY'
import random, sys
path, size, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
kind = sys.argv[4] if len(sys.argv) > 4 else "mix"
kinds = ["random", "zero", "text", "lowent"]
r = random.Random(seed)
words = [b"qcow", b"cluster", b"hello", b"world", b"\n", b" ", b"0123456789",
         b"QEMU", b"the", b"image", b"of", b"a", b"disk", b"\t", b"L2"]
acgt = bytes(b"ACGT"[i & 3] for i in range(256))
out = bytearray()
while len(out) < size:
    n = r.choice([1, 7, 100, 511, 512, 513, 4096, 5000, 65536, 100000, 300000])
    k = r.choice(kinds) if kind == "mix" else kind
    if k == "random":
        out += r.randbytes(n)
    elif k == "zero":
        out += bytes(n)
    elif k == "text":
        t = b" ".join(r.choice(words) for _ in range(n // 4 + 1))
        out += t[:n]
    else:
        out += r.randbytes(n).translate(acgt)
with open(path, "wb") as f:
    f.write(out[:size])
PY
}

# vsize IMG: the virtual size of IMG according to qemu-img info.
vsize() {
    qemu-img info --output=json "$1" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])'
}

# use_unsafe_qemu_io: from now on, `qemu-io` in this script means
# `qemu-io -t unsafe`.  QEMU's qcow driver flushes after every table
# update, so with qemu-io's default cache mode a list of writes on
# 512-byte clusters takes seconds per MiB.  Flushes do not change what
# ends up in the file, so the interop tests run qemu-io with
# cache=unsafe (flushes become no-ops).  Not for tests of flushes.
use_unsafe_qemu_io() {
    qemu-io() {
        command qemu-io -t unsafe "$@"
    }
}

# ---------------------------------------------------------- NBD servers

# start_nbd NAME ARGS...: run `qcowkit nbd --pid-file=NAME.pid ARGS...` in
# the background and wait (10 s at most) for it to listen.  Sets $PID;
# its stderr goes to NAME.err.  The server is ended on exit.
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

# nbd_python: print a python able to import libnbd's module, or nothing.
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
