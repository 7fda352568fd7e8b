#!/usr/bin/env bash
# One bounded libFuzzer run, as a test: FUZZER CORPUS_DIR SECONDS.
# Fails on any crash, leak, timeout or memory blow-up libFuzzer reports.
set -euo pipefail
fuzzer=$1 corpus=$2 seconds=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/qcowkit-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/artifacts"
for f in "$corpus"/*; do
    case $(basename "$f") in
    crash-* | leak-* | timeout-* | oom-*) ;; # replayed by fuzz-replay-*
    *) cp "$f" "$work/corpus/" ;;
    esac
done
cd "$work"
"$fuzzer" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/" corpus \
    >log 2>&1 || {
    tail -40 log
    ls -l artifacts
    exit 1
}
grep -E 'stat::number_of_executed_units|cov:' log | tail -2
