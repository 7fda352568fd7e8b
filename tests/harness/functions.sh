# shellcheck shell=bash
#
# functions.sh - helpers shared by the shell tests (tests/interop, ...).
#
# Usage, at the top of a test script:
#
#     set -euo pipefail
#     source "${TESTS_DIR:-$(dirname "$0")/..}/harness/functions.sh"
#     requires qemu-img qemu-io
#     make_tmpdir            # sets $T, removed again on exit
#
# Exit status convention (as in meson and automake): 0 pass, 1 fail,
# 77 skip.
#
# Environment:
#   QCOWKIT    the qcowkit command under test (default: build/qcowkit
#              next to the source tree, as meson builds it)
#   TESTS_DIR  the tests/ folder of the source tree
#   VERBOSE=1  echo every command run through `run`

if [ -z "${TESTS_DIR:-}" ]; then
    TESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fi
if [ -z "${QCOWKIT:-}" ]; then
    QCOWKIT="$TESTS_DIR/../build/qcowkit"
fi
export TESTS_DIR QCOWKIT

# The name of the running test, for messages.
TEST_NAME=${0##*/}
TEST_NAME=${TEST_NAME%.sh}

# die MSG...: report a failure on stderr and exit 1.
die() {
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

# requires CMD...: skip the test (exit 77) unless every CMD is runnable.
requires() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || skip "$c is not installed"
    done
}

# requires_qcowkit: skip unless $QCOWKIT is an executable file.
requires_qcowkit() {
    [ -x "$QCOWKIT" ] || skip "qcowkit command not found at $QCOWKIT"
}

# make_tmpdir: create a private temporary folder, store its name in $T
# and remove it (with everything in it) when the script exits, whatever
# the reason.  Must be called in the main shell, not in $(...).
make_tmpdir() {
    T=$(mktemp -d "${TMPDIR:-/tmp}/${TEST_NAME}.XXXXXX") ||
        die "cannot create a temporary folder"
    # shellcheck disable=SC2064  # expand $T now
    trap "rm -rf '$T'" EXIT
    export T
}

# run CMD ARGS...: run a command; on failure report it with its output
# and exit 1.  Output is shown only with VERBOSE=1 or on failure.
run() {
    local out rc=0
    [ "${VERBOSE:-0}" = 1 ] && echo "+ $*" >&2
    out=$("$@" 2>&1) || rc=$?
    if [ "$rc" -ne 0 ]; then
        printf '%s\n' "$out" >&2
        die "command failed (exit $rc): $*"
    fi
    [ "${VERBOSE:-0}" = 1 ] && [ -n "$out" ] && printf '%s\n' "$out" >&2
    return 0
}

# qk ARGS...: run the qcowkit command under test via `run`.
qk() {
    run "$QCOWKIT" "$@"
}

# same_files A B WHAT: die unless files A and B are byte-identical.
same_files() {
    local a=$1 b=$2 what=${3:-"$1 vs $2"}
    local out
    if ! out=$(cmp "$a" "$b" 2>&1); then
        die "$what: files differ: $out"
    fi
}

# ---------------------------------------------------------------- cases
#
# A script may run several independent cases and report every failing
# one instead of stopping at the first:
#
#     case_plain() { ...; die "..." ...; }
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
        die "qemu-img convert -c -O qcow $src $dst failed (exit $rc)"
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
        die "qemu-img compare $1 $2: exit $rc, not identical"
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

# QEMU's qcow driver flushes after every table update, so with qemu-io's
# default cache mode a list of writes on 512-byte clusters takes seconds
# per MiB.  Flushes do not change what ends up in the file, so tests run
# qemu-io with cache=unsafe (flushes become no-ops).
qemu-io() {
    command qemu-io -t unsafe "$@"
}
