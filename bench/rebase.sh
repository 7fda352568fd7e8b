#!/usr/bin/env bash
# bench/rebase.sh - a safe rebase of a sparse overlay: qcowkit against
# qemu-img, whose time follows the virtual size where qcowkit's follows
# the data.
#
# usage: bench/rebase.sh [--size SIZE] [--runs N] [--dir DIR]
#
#   --size SIZE  virtual size of the images (default 8G: qemu-img takes
#                about a minute there on a 2-core machine, and ten times
#                the size takes ten times as long)
#   --runs N     runs per tool, alternating (default 3); medians shown
#   --dir DIR    where to put the images (default $TMPDIR or /var/tmp)
#
# The chain: an overlay holding 128 KiB (at 1/8 and 3/4 of the size) over
# a backing file holding 64 KiB, rebased onto an empty image of the same
# size.  QEMU 7.2 cannot store a new backing file name in a qcow image:
# qemu-img walks and copies as in any safe rebase, then fails to change
# the name; the time of that walk is what is compared.  qcowkit's rebase
# of the same chain at 16 TiB is shown too.  QCOWKIT and QEMU_IMG name the
# programs; exits 77 when qemu-img is missing.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
QCOWKIT=${QCOWKIT:-$here/../build/qcowkit}
QEMU_IMG=${QEMU_IMG:-qemu-img}
size=8G
runs=3
dir=${TMPDIR:-/var/tmp}

while [ $# -gt 0 ]; do
    case $1 in
    --size) size=$2; shift ;;
    --runs) runs=$2; shift ;;
    --dir) dir=$2; shift ;;
    *) echo "usage: $0 [--size SIZE] [--runs N] [--dir DIR]" >&2; exit 2 ;;
    esac
    shift
done
command -v "$QEMU_IMG" >/dev/null || { echo "qemu-img missing" >&2; exit 77; }
[ -x "$QCOWKIT" ] || { echo "no qcowkit at $QCOWKIT" >&2; exit 1; }

work=$(mktemp -d "$dir/qcowkit-rebase.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

# make_chain SIZE: base.qcow, top.qcow over it, empty new.qcow.
make_chain() {
    local bytes
    rm -f base.qcow top.qcow new.qcow
    "$QCOWKIT" create -q -f qcow base.qcow "$1"
    "$QCOWKIT" create -q -f qcow -b base.qcow -F qcow top.qcow "$1"
    "$QCOWKIT" create -q -f qcow new.qcow "$1"
    bytes=$("$QCOWKIT" info --output=json top.qcow |
        sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p')
    "$QCOWKIT" io -c "write -P 0x33 $((bytes / 2)) 64k" base.qcow >/dev/null
    "$QCOWKIT" io -c "write -P 0x11 $((bytes / 8)) 64k" \
        -c "write -P 0x22 $((bytes / 4 * 3)) 64k" top.qcow >/dev/null
}

# timed TOOL FILE CMD...: run CMD on a fresh copy of the chain, append
# the wall time in seconds to FILE.  qemu-img's expected failure to store
# the new name is let through.
timed() {
    local tool=$1 file=$2 s e rc=0
    shift 2
    cp top.qcow run.qcow
    sync
    s=$(date +%s%N)
    "$@" run.qcow >run.out 2>&1 || rc=$?
    e=$(date +%s%N)
    if [ "$rc" -ne 0 ] && ! { [ "$tool" = qemu ] &&
        grep -q "Could not change the backing file" run.out; }; then
        cat run.out >&2
        exit 1
    fi
    awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f\n", (e - s) / 1e9 }' >>"$file"
}

median() {
    sort -g "$1" | awk '{ a[NR] = $1 }
        END { if (NR % 2) printf "%.3f", a[(NR + 1) / 2];
              else printf "%.3f", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

echo "== machine"
echo "nproc:     $(nproc)"
echo "qemu-img:  $("$QEMU_IMG" --version | head -n1)"
echo "qcowkit:   $QCOWKIT"
echo "runs:      $runs"

make_chain "$size"
for ((i = 0; i < runs; i++)); do
    timed qemu t.qemu "$QEMU_IMG" rebase -f qcow -b new.qcow -F qcow
    timed qk t.qk "$QCOWKIT" rebase -f qcow -b new.qcow -F qcow
done
make_chain 16T
for ((i = 0; i < runs; i++)); do
    timed qk t.qk16 "$QCOWKIT" rebase -f qcow -b new.qcow -F qcow
done

echo "== safe rebase of a sparse overlay (median wall seconds)"
printf '%-10s %-8s %10s\n' tool size seconds
printf '%-10s %-8s %10s\n' qemu-img "$size" "$(median t.qemu)"
printf '%-10s %-8s %10s\n' qcowkit "$size" "$(median t.qk)"
printf '%-10s %-8s %10s\n' qcowkit 16T "$(median t.qk16)"
echo "== ratio"
echo "rebase $size: qemu-img / qcowkit = $(awk -v a="$(median t.qemu)" \
    -v b="$(median t.qk)" 'BEGIN { if (b + 0 == 0) print "-";
        else printf "%.1f", a / b }')"
