#!/usr/bin/env bash
# bench/discard.sh - discard that gives space back: qcowkit against QEMU
# on the same work, time and the blocks the file keeps.
#
# usage: bench/discard.sh [--size SIZE] [--runs N] [--dir DIR]
#
#   --size SIZE  virtual size (default 256M; qemu-img's convert -n below
#                takes minutes per GiB on a 2-core machine)
#   --runs N     runs per tool, alternating (default 3); medians shown
#   --dir DIR    where to put the images (default $TMPDIR or /var/tmp)
#
# Rows:
#   u  convert -n -O raw of a qcow image holding 1 MiB into an existing,
#      fully allocated raw file of the same size (issue 12's case)
#   t  io discard of the whole of a fully written qcow image: QEMU's qcow
#      driver ignores discard, so its file keeps every block
# QCOWKIT, QEMU_IMG and QEMU_IO name the programs; exits 77 without QEMU.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
QCOWKIT=${QCOWKIT:-$here/../build/qcowkit}
QEMU_IMG=${QEMU_IMG:-qemu-img}
QEMU_IO=${QEMU_IO:-qemu-io}
size=256M
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
for p in "$QEMU_IMG" "$QEMU_IO"; do
    command -v "$p" >/dev/null || { echo "$p missing" >&2; exit 77; }
done
[ -x "$QCOWKIT" ] || { echo "no qcowkit at $QCOWKIT" >&2; exit 1; }

work=$(mktemp -d "$dir/qcowkit-discard.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

# KiB the file really holds.
kib() { echo $(($(stat -c %b "$1") * $(stat -c %B "$1") / 1024)); }

# timed FILE CMD...: append CMD's wall time in seconds to FILE.
timed() {
    local file=$1 s e
    shift
    sync
    s=$(date +%s%N)
    "$@" >/dev/null
    e=$(date +%s%N)
    awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f\n", (e - s) / 1e9 }' >>"$file"
}

median() { sort -g "$1" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# row NAME: prepare_NAME, then qemu_NAME and qk_NAME in turn; one line.
row() {
    local name=$1 i qk_kib qemu_kib
    rm -f "$name.qk" "$name.qemu"
    for ((i = 0; i < runs; i++)); do
        "prepare_$name"
        timed "$name.qemu" "qemu_$name"
        qemu_kib=$(kib target)
        "prepare_$name"
        timed "$name.qk" "qk_$name"
        qk_kib=$(kib target)
    done
    printf '%-3s %10s %10s %8s %14s %14s\n' "$name" \
        "$(median "$name.qemu")" "$(median "$name.qk")" \
        "$(awk -v a="$(median "$name.qemu")" -v b="$(median "$name.qk")" \
            'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')" \
        "$qemu_kib" "$qk_kib"
}

"$QEMU_IMG" create -q -f qcow src.qcow "$size"
bytes=$("$QCOWKIT" info --output=json src.qcow | sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p')
"$QEMU_IO" -c 'write -q -P 0x5a 0 512k' -c "write -q -P 0xa5 $((bytes / 2)) 512k" src.qcow

prepare_u() { rm -f target; fallocate -l "$bytes" target; }
prepare_t() {
    rm -f target
    "$QEMU_IMG" create -q -f qcow target "$size"
    "$QEMU_IO" -c "write -q -P 0x77 0 $bytes" target
}

echo "machine: $(nproc) cores, $(awk '/model name/ { $1 = $2 = $3 = ""; print; exit }' /proc/cpuinfo | sed 's/^ *//'), $(uname -sr), $(df -T . | awk 'NR == 2 { print $2 }')"
echo "size $size, $runs runs each, medians in seconds; KiB the file keeps after the last run"
printf '%-3s %10s %10s %8s %14s %14s\n' row qemu qcowkit ratio "qemu KiB" "qcowkit KiB"
qk_u() { "$QCOWKIT" convert -n -f qcow -O raw src.qcow target; }
qemu_u() { "$QEMU_IMG" convert -n -f qcow -O raw src.qcow target; }
qk_t() { "$QCOWKIT" io -c "discard 0 $bytes" target; }
qemu_t() { "$QEMU_IO" -c "discard 0 $bytes" target; }
row u
# Row u's bytes must be the same for both.
"$QEMU_IMG" compare -f qcow -F raw src.qcow target >/dev/null
row t
