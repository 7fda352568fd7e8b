#!/usr/bin/env bash
# The one test command: bash scripts/test.sh [MESON-TEST-ARGS...]
#
# Installs dependencies (if missing; not with QCOWKIT_NO_SETUP=1), checks
# the formatting of the C sources, then builds and runs `meson test` in
# these build directories:
#   build/       gcc, as configured by meson.build      (every test)
#   build-asan/  gcc, -Db_sanitize=address,undefined    (every test)
#   build-tsan/  clang, -Db_sanitize=thread             (suite "threads" only)
#   build-fuzz-ci/ clang, libFuzzer + ASan/UBSan         (suite "fuzz-run":
#                bounded fuzzing, QCOWKIT_FUZZ_SECONDS per harness)
# Sanitizer builds use -Dwerror=false (sanitizer instrumentation makes gcc
# and clang emit spurious warnings); the plain build keeps -Werror.
#
# The format stage runs `clang-format --dry-run --Werror` (style from
# .clang-format) over every *.c and *.h file git tracks; it counts as one
# test: passed, failed (some file is not formatted; the files are listed)
# or skipped (clang-format is not installed).
#
# Extra arguments go to every `meson test` run.  A bare word that names a
# test suite is turned into `--suite WORD`, so `bash scripts/test.sh cli`
# runs only the suite "cli"; other bare words select tests by name.  The
# tsan stage always runs only the suite "threads" (intersected with what
# the arguments select) and is skipped when that suite has no tests or the
# arguments select other suites only.
#
# The last line printed is the total over all stages:
#   N passed, N failed, N skipped
# counted from each stage's meson-logs/testlog.json: OK and EXPECTEDFAIL
# pass; SKIP is skipped; FAIL, TIMEOUT, ERROR, UNEXPECTEDPASS (and any
# other result) fail; the format stage adds its one test.  A stage that
# does not configure or compile, or whose `meson test` fails without a
# failed test in its log, counts as one failure.
# Exits non-zero if anything failed or if no test ran at all.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

# QCOWKIT_NO_SETUP=1: the dependencies are known to be there (or the
# caller wants to see what is missing as skipped tests); no apt-get.
if [ "${QCOWKIT_NO_SETUP:-0}" = 1 ]; then
    echo "test: QCOWKIT_NO_SETUP=1: not running scripts/setup.sh"
elif ! bash scripts/setup.sh; then
    echo "test: scripts/setup.sh failed" >&2
    echo "0 passed, 1 failed, 0 skipped"
    exit 1
fi

NPROC=2
COMMON=(--print-errorlogs --num-processes "$NPROC")

STAGE_LOGS=()  # testlog.json of every stage that ran meson test
EXTRA_FAILS=0  # stage-level failures (configure, compile, meson itself)

note() { printf '\n=== %s\n' "$*"; }

# configure DIR CC [MESON-SETUP-OPTIONS...]
# Sets DIR up once; later runs only apply the options (cheap, idempotent).
configure() {
    local dir=$1 cc=$2
    shift 2
    if [ -f "$dir/build.ninja" ] && [ -f "$dir/meson-private/coredata.dat" ]; then
        local have
        have=$(meson introspect "$dir" --compilers 2>/dev/null |
            python3 -c 'import json,sys; print(json.load(sys.stdin).get("host",{}).get("c",{}).get("id",""))' 2>/dev/null)
        if [ -n "$have" ] && [ "$have" != "$cc" ]; then
            echo "test: $dir was configured with $have, not $cc; recreating it"
            rm -rf "$dir"
        elif [ $# -gt 0 ]; then
            meson configure "$dir" "$@" >/dev/null || return 1
            return 0
        else
            return 0
        fi
    fi
    if [ -f "$dir/meson-private/coredata.dat" ]; then
        CC=$cc meson setup --reconfigure "$dir" "$@"
    else
        CC=$cc meson setup "$dir" "$@"
    fi
}

# run_stage NAME DIR [ENV=VALUE...] -- [MESON-TEST-ARGS...]
run_stage() {
    local name=$1 dir=$2
    shift 2
    local envs=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do
        envs+=("$1")
        shift
    done
    shift
    note "$name: meson test -C $dir $*"
    rm -f "$dir/meson-logs/testlog.json"
    local rc=0
    env "${envs[@]}" meson test -C "$dir" "$@" || rc=$?
    if [ -f "$dir/meson-logs/testlog.json" ]; then
        STAGE_LOGS+=("$name=$dir/meson-logs/testlog.json")
    fi
    if [ "$rc" -ne 0 ]; then
        local logged_fail=0
        if [ -f "$dir/meson-logs/testlog.json" ]; then
            logged_fail=$(python3 - "$dir/meson-logs/testlog.json" <<'PY'
import json, sys
n = 0
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    try:
        r = json.loads(line).get("result")
    except ValueError:
        continue
    if r not in (None, "OK", "EXPECTEDFAIL", "SKIP"):
        n += 1
print(n)
PY
)
        fi
        if [ "${logged_fail:-0}" -eq 0 ]; then
            echo "test: $name: meson test exited $rc without a failed test in its log"
            EXTRA_FAILS=$((EXTRA_FAILS + 1))
        fi
    fi
}

# build_stage NAME DIR CC [MESON-SETUP-OPTIONS...]; returns non-zero on failure
build_stage() {
    local name=$1 dir=$2 cc=$3
    shift 3
    note "$name: configure and compile $dir ($cc${*:+ $*})"
    if ! configure "$dir" "$cc" "$@"; then
        echo "test: $name: meson setup failed"
        EXTRA_FAILS=$((EXTRA_FAILS + 1))
        return 1
    fi
    if ! meson compile -C "$dir"; then
        echo "test: $name: compile failed"
        EXTRA_FAILS=$((EXTRA_FAILS + 1))
        return 1
    fi
}

# ---------------------------------------------------------------- stage 0
# Formatting.  Its result is written as a one-line testlog.json, so the
# summary counts it like any test.
FORMAT_LOG=$(mktemp "${TMPDIR:-/tmp}/qcowkit-format.XXXXXX")
FORMAT_OUT=$(mktemp "${TMPDIR:-/tmp}/qcowkit-format.XXXXXX")
trap 'rm -f "$FORMAT_LOG" "$FORMAT_OUT"' EXIT
format_stage() {
    local result=OK f
    local files=()
    note "format: clang-format --dry-run --Werror on every tracked *.c, *.h"
    if ! command -v clang-format >/dev/null 2>&1; then
        echo "test: format: clang-format is not installed; skipped"
        result=SKIP
    else
        if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
            while IFS= read -r -d '' f; do
                # Deleted in the work tree but not yet in the index: gone.
                [ -f "$f" ] && files+=("$f")
            done < <(git ls-files -z -- '*.c' '*.h')
        else
            echo "test: format: not a git work tree; checking every *.c, *.h"
            while IFS= read -r -d '' f; do
                files+=("${f#./}")
            done < <(find . \( -path './.*' -o -path './build*' \) -prune -o \
                -type f \( -name '*.c' -o -name '*.h' \) -print0 | sort -z)
        fi
        if [ "${#files[@]}" -eq 0 ]; then
            echo "test: format: no C files found"
            result=FAIL
        elif ! clang-format --dry-run --Werror "${files[@]}" >"$FORMAT_OUT" 2>&1; then
            result=FAIL
            head -n 60 "$FORMAT_OUT"
            echo "test: format: not formatted as .clang-format says" \
                "(fix with clang-format -i FILE...):"
            sed -n 's/^\([^:]*\):[0-9]*:[0-9]*: error: .*/\1/p' "$FORMAT_OUT" |
                sort -u | sed 's/^/    /'
        else
            echo "test: format: ${#files[@]} files formatted"
        fi
    fi
    printf '{"name": "clang-format", "result": "%s"}\n' "$result" >"$FORMAT_LOG"
    STAGE_LOGS+=("format=$FORMAT_LOG")
}
format_stage

# ---------------------------------------------------------------- stage 1
GCC=${CC:-gcc}
build_ok=1
build_stage normal build "$GCC" || build_ok=0

# Suite names known to meson (without the "project:" prefix).
SUITES=()
if [ -f build/meson-private/coredata.dat ]; then
    mapfile -t SUITES < <(meson introspect build --tests 2>/dev/null | python3 -c '
import json, sys
try:
    tests = json.load(sys.stdin)
except ValueError:
    tests = []
names = set()
for t in tests:
    for s in t.get("suite", []):
        names.add(s.split(":", 1)[-1])
for n in sorted(names):
    print(n)
')
fi
is_suite() {
    local s
    for s in "${SUITES[@]}"; do
        [ "$s" = "$1" ] && return 0
    done
    return 1
}

# Translate the user's arguments: bare suite names become --suite NAME.
# Also collect the suites they select (for the tsan stage).
USER_ARGS=()
USER_NOSUITE_ARGS=()  # the same without any --suite option
USER_SUITES=()
want_value=""
for a in "$@"; do
    if [ -n "$want_value" ]; then
        if [ "$want_value" = suite ]; then
            USER_SUITES+=("$a")
        else
            USER_NOSUITE_ARGS+=("$a")
        fi
        USER_ARGS+=("$a")
        want_value=""
        continue
    fi
    case $a in
    --suite)
        USER_ARGS+=("$a")
        want_value=suite
        ;;
    --suite=*)
        USER_ARGS+=("$a")
        USER_SUITES+=("${a#--suite=}")
        ;;
    -C | --wrapper | --setup | -t | --timeout-multiplier | --num-processes | \
        --repeat | --test-args | --no-suite | --logbase | --maxfail | --gdb-path)
        USER_ARGS+=("$a")
        USER_NOSUITE_ARGS+=("$a")
        want_value=other
        ;;
    -*)
        USER_ARGS+=("$a")
        USER_NOSUITE_ARGS+=("$a")
        ;;
    *)
        if is_suite "$a"; then
            USER_ARGS+=(--suite "$a")
            USER_SUITES+=("$a")
        else
            USER_ARGS+=("$a")
            USER_NOSUITE_ARGS+=("$a")
        fi
        ;;
    esac
done

if [ "$build_ok" -eq 1 ]; then
    run_stage normal build -- "${COMMON[@]}" "${USER_ARGS[@]}"
fi

# ---------------------------------------------------------------- stage 2
SAN_ENV=(
    "ASAN_OPTIONS=halt_on_error=1:print_stacktrace=1:detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
    "UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
)
if build_stage asan build-asan "$GCC" \
    -Db_sanitize=address,undefined -Db_lundef=false -Dwerror=false; then
    run_stage asan build-asan "${SAN_ENV[@]}" -- \
        "${COMMON[@]}" --timeout-multiplier 4 "${USER_ARGS[@]}"
fi

# ---------------------------------------------------------------- stage 3
tsan_reason=""
if ! is_suite threads; then
    tsan_reason="suite 'threads' has no tests"
elif [ "${#USER_SUITES[@]}" -gt 0 ]; then
    tsan_reason="the arguments do not select suite 'threads'"
    for s in "${USER_SUITES[@]}"; do
        case $s in
        threads | *:threads) tsan_reason="" ;;
        esac
    done
fi
if [ -n "$tsan_reason" ]; then
    note "tsan: skipped ($tsan_reason)"
else
    TSAN_ENV=(
        "TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
    )
    if build_stage tsan build-tsan clang \
        -Db_sanitize=thread -Db_lundef=false -Dwerror=false; then
        run_stage tsan build-tsan "${TSAN_ENV[@]}" -- \
            "${COMMON[@]}" --timeout-multiplier 6 --suite threads \
            "${USER_NOSUITE_ARGS[@]}"
    fi
fi

# ---------------------------------------------------------------- stage 4
# Bounded fuzzing (libFuzzer, clang, ASan+UBSan): every harness for
# QCOWKIT_FUZZ_SECONDS (default 30) on a copy of its corpus.  Only in a full
# run, or when the suite fuzz-run is asked for.
fuzz_reason="only in a full run (no arguments) or with suite fuzz-run"
if [ $# -eq 0 ]; then
    fuzz_reason=""
fi
for s in "${USER_SUITES[@]}"; do
    [ "$s" = fuzz-run ] && fuzz_reason=""
done
if [ -n "$fuzz_reason" ]; then
    note "fuzz: skipped ($fuzz_reason)"
elif build_stage fuzz build-fuzz-ci clang -Dfuzzing=true \
    -Dfuzz_seconds="${QCOWKIT_FUZZ_SECONDS:-30}" \
    -Db_sanitize=address,undefined -Db_lundef=false -Dwerror=false; then
    run_stage fuzz build-fuzz-ci "${SAN_ENV[@]}" -- \
        "${COMMON[@]}" --suite fuzz-run
fi

# ---------------------------------------------------------------- summary
note "summary"
python3 - "$EXTRA_FAILS" "${STAGE_LOGS[@]}" <<'PY'
import json, sys

extra = int(sys.argv[1])
tp = tf = ts = 0
for arg in sys.argv[2:]:
    name, path = arg.split("=", 1)
    p = f = s = 0
    try:
        fh = open(path, encoding="utf-8", errors="replace")
    except OSError:
        continue
    with fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line).get("result")
            except (ValueError, AttributeError):
                continue
            if r in ("OK", "EXPECTEDFAIL"):
                p += 1
            elif r == "SKIP":
                s += 1
            elif r is not None:
                f += 1
    print(f"{name}: {p} passed, {f} failed, {s} skipped")
    tp, tf, ts = tp + p, tf + f, ts + s
if extra:
    print(f"stage failures (setup/compile/meson): {extra}")
tf += extra
total = tp + tf + ts
# Exit status for the shell: 0 only if nothing failed and something ran.
code = 1 if tf or total == 0 else 0
if total == 0:
    print("no test ran")
print(f"{tp} passed, {tf} failed, {ts} skipped")
sys.exit(code)
PY
