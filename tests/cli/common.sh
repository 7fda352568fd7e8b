# Sourced by the CLI tests: $Q is the command under test, $T a scratch
# folder removed on exit.  Exit 77 means SKIP to Meson.
set -euo pipefail

Q=${QCOWKIT:-}
if [ -z "$Q" ] || [ ! -x "$Q" ]; then
    echo "QCOWKIT is not set to the qcowkit command; skipping" >&2
    exit 77
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# expect_rc CODE CMD... : run CMD, check its exit status; output in out/err.
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

have() {
    command -v "$1" >/dev/null 2>&1
}

# Drop qemu-io's timing numbers.
untime() {
    sed -E 's/; [0-9:.]+ sec \(.*\)$/; TIME/'
}
