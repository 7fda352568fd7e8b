#!/bin/sh
# fuzz/run.sh - the long fuzzing run.
#
#   fuzz/run.sh [SECONDS] [HARNESS...]
#
# Configures build-fuzz/ with clang, libFuzzer, ASan and UBSan, builds the
# harnesses (only the fuzz targets, so that unrelated work in progress
# elsewhere does not stop it), then runs each harness for SECONDS seconds
# (default 60, or $FUZZ_SECONDS) on a copy of its seed corpus in
# fuzz/corpus/<harness>/, with -rss_limit_mb=2048 -timeout=10.  Crashing
# inputs land in build-fuzz/fuzz-artifacts/.  At the end it prints, per
# harness, the executions, the coverage reached and the artifacts found.
#
# Environment:
#   FUZZ_SECONDS   seconds per harness (when no argument is given)
#   FUZZ_JOBS      parallel fuzzing processes per harness (default 1)
#   FUZZ_BUILDDIR  build folder (default build-fuzz at the top)
#   FUZZ_FLAGS     extra libFuzzer flags
#
# New interesting inputs stay in build-fuzz/fuzz-work/<harness>/; to fold
# them into the committed corpus, minimised:
#   build-fuzz/fuzz/fuzz-open -merge=1 fuzz/corpus/fuzz-open \
#       build-fuzz/fuzz-work/fuzz-open
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
secs=${FUZZ_SECONDS:-60}
if [ $# -gt 0 ]; then
    secs=$1
    shift
fi
harnesses=${*:-fuzz-open fuzz-ops fuzz-nbd fuzz-repair}
builddir=${FUZZ_BUILDDIR:-$top/build-fuzz}
jobs=${FUZZ_JOBS:-1}

if [ ! -f "$builddir/build.ninja" ]; then
    CC=${CC:-clang} meson setup "$builddir" "$top" \
        -Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false \
        -Dwerror=false -Dc_args=-fno-sanitize-recover=undefined
else
    meson configure "$builddir" -Dfuzzing=true \
        -Db_sanitize=address,undefined -Db_lundef=false
fi
targets=
for h in $harnesses; do
    targets="$targets fuzz/$h"
done
# shellcheck disable=SC2086
ninja -C "$builddir" $targets

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
# Step around the known library bugs listed in fuzz-ops.c (the saved
# crash-* inputs still fail in the replay tests).

mkdir -p "$builddir/fuzz-artifacts" "$builddir/fuzz-logs"
summary=
status=0
for h in $harnesses; do
    work=$builddir/fuzz-work/$h
    log=$builddir/fuzz-logs/$h.log
    rm -rf "$work"
    mkdir -p "$work"
    # Known crashers stay out of the working copy: they would stop the run
    # at once.  The replay tests still run them.
    for f in "$top/fuzz/corpus/$h"/*; do
        case $(basename "$f") in
        crash-* | leak-* | timeout-* | oom-*) ;;
        *) [ -f "$f" ] && cp "$f" "$work/" ;;
        esac
    done
    echo "== $h: ${secs}s, $jobs job(s), corpus $(ls "$work" | wc -l) files"
    rc=0
    parallel=
    if [ "$jobs" -gt 1 ]; then
        parallel="-jobs=$jobs -workers=$jobs"
    fi
    # libFuzzer writes the logs of -jobs workers (fuzz-N.log) to the current
    # folder: run in a folder of its own.
    jobdir=$builddir/fuzz-logs/$h.jobs
    rm -rf "$jobdir"
    mkdir -p "$jobdir"
    # shellcheck disable=SC2086
    (cd "$jobdir" && "$builddir/fuzz/$h" -max_total_time="$secs" \
        -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 $parallel \
        -artifact_prefix="$builddir/fuzz-artifacts/$h-" ${FUZZ_FLAGS:-} \
        "$work") >"$log" 2>&1 || rc=$?
    cat "$jobdir"/fuzz-*.log >>"$log" 2>/dev/null || true
    execs=$(grep 'stat::number_of_executed_units' "$log" |
        awk '{s += $2} END {print s + 0}')
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1)
    arts=$(find "$builddir/fuzz-artifacts" -name "$h-*" | wc -l)
    [ "$rc" -ne 0 ] && status=1
    summary="$summary$h: exit $rc, $execs executions, ${cov:-cov: ?}, corpus $(ls "$work" | wc -l) files, $arts artifact(s)
"
    tail -3 "$log"
done
echo
echo "== summary (${secs}s per harness; logs in $builddir/fuzz-logs)"
printf '%s' "$summary"
find "$builddir/fuzz-artifacts" -type f | sed 's/^/artifact: /'
exit $status
