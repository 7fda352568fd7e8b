#!/usr/bin/env bash
# bench/run.sh --small --runs 1: proves the benchmark script runs end to
# end (every row, its checks and its table).  No timing is asserted.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../harness/functions.sh"
requires_qcowkit
if ! command -v qemu-img >/dev/null 2>&1 || ! command -v perl >/dev/null 2>&1; then
    echo "bench: qemu-img or perl missing: skipped"
    exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
QCOWKIT=$QCOWKIT bash "$here/../../bench/run.sh" --small --runs 1 \
    --dir "$work" >"$work/out.txt" 2>&1 || {
    rc=$?
    cat "$work/out.txt"
    exit "$rc"
}
cat "$work/out.txt"
for want in "== results" "== ratios" "c: qcowkit convert -c output reads back" \
    "b: qcowkit convert -O raw output equals the source" \
    "e: qcowkit's and qemu-img's written images are identical"; do
    grep -q -- "$want" "$work/out.txt" || {
        echo "bench: missing from the output: $want"
        exit 1
    }
done
# Both tools print qemu-img bench's lines.
"$QCOWKIT" bench -c 1 "$work/none.qcow" >/dev/null 2>&1 && exit 1
qemu-img create -q -f qcow "$work/x.qcow" 1M
out=$("$QCOWKIT" bench -w -c 8 -d 2 -s 4k -S 8k "$work/x.qcow")
printf '%s\n' "$out"
case $out in
"Sending 8 write requests, 4096 bytes each, 2 in parallel (starting at offset 0, step size 8192)"*"Run completed in "*" seconds.") ;;
*)
    echo "bench: unexpected output"
    exit 1
    ;;
esac
echo ok
