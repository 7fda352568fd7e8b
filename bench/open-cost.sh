#!/usr/bin/env bash
# bench/open-cost.sh - what opening an image costs against its virtual
# size: wall time and peak resident memory of `info` and of a 64 KiB read
# in the middle, for qcowkit and QEMU (qemu-img info, qemu-io read), on
# qcow images of 1 GiB, 1 TiB and 16 TiB (4 KiB clusters: L1 tables of
# 4 KiB, 4 MiB and 64 MiB) made by qemu-img, each with 64 KiB of data in
# the middle.  A last row is a header declaring a 1 GiB L1 table (virtual
# size 2^56, 64 KiB clusters) over a sparse file.
#
# usage: bench/open-cost.sh [--runs N] [--dir DIR] [--keep]
#
# QCOWKIT (default: build/qcowkit beside this folder), QEMU_IMG and
# QEMU_IO name the programs.  Exits 77 when qemu-img or qemu-io is missing.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
QCOWKIT=${QCOWKIT:-$here/../build/qcowkit}
QEMU_IMG=${QEMU_IMG:-qemu-img}
QEMU_IO=${QEMU_IO:-qemu-io}
runs=${BENCH_RUNS:-3}
dir=${TMPDIR:-/var/tmp}
keep=0

while [ $# -gt 0 ]; do
    case $1 in
    --runs) runs=$2; shift ;;
    --runs=*) runs=${1#--runs=} ;;
    --dir) dir=$2; shift ;;
    --dir=*) dir=${1#--dir=} ;;
    --keep) keep=1 ;;
    -h | --help)
        sed -n '2,14s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    *)
        echo "open-cost.sh: unknown argument '$1' (try --help)" >&2
        exit 2
        ;;
    esac
    shift
done
case $runs in
'' | *[!0-9]* | 0)
    echo "open-cost.sh: --runs needs a positive number" >&2
    exit 2
    ;;
esac
for p in "$QEMU_IMG" "$QEMU_IO"; do
    if ! command -v "$p" >/dev/null 2>&1; then
        echo "open-cost.sh: $p not found: skipped"
        exit 77
    fi
done
if [ ! -x "$QCOWKIT" ] || [ ! -x /usr/bin/time ]; then
    echo "open-cost.sh: $QCOWKIT or /usr/bin/time missing" >&2
    exit 1
fi

work=$(mktemp -d "$dir/qcowkit-open-cost.XXXXXX")
cleanup() {
    if [ "$keep" = 1 ]; then
        echo "work folder kept: $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
cd "$work"

# measure KEY CMD...: append "seconds KiB" of one run of CMD to m.KEY.
measure() {
    local key=$1
    shift
    if ! /usr/bin/time -f '%e %M' -o one.txt "$@" >last.out 2>last.err; then
        echo "open-cost.sh: failed: $*" >&2
        cat last.err >&2
        exit 1
    fi
    cat one.txt >>"m.$key"
}

# median KEY COLUMN: the median of one column of m.KEY.
median() {
    awk -v c="$2" '{ print $c }' "m.$1" | sort -g | awk '{ a[NR] = $1 }
        END { if (NR % 2) print a[(NR + 1) / 2];
              else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

ratio() { # ratio A B: A / B
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (b + 0 == 0) print "-"; else printf "%.2f", a / b }'
}

echo "== machine"
echo "nproc:     $(nproc)"
echo "kernel:    $(uname -sr)"
echo "qemu-img:  $("$QEMU_IMG" --version | head -n1)"
echo "qcowkit:   $("$QCOWKIT" --version | head -n1)"
echo "runs:      $runs per command (medians shown)"
echo

sizes="1G 1T 16T"
for s in $sizes; do
    "$QEMU_IMG" create -q -f qcow "img.$s.qcow" "$s"
done
# 2^56 bytes, 64 KiB clusters, L1 table at 4096: a 1 GiB hole.
printf 'QFI\373\0\0\0\1\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0' >img.hostile.qcow
printf '\1\0\0\0\0\0\0\0\20\15\0\0\0\0\0\0\0\0\0\0\0\0\20\0' \
    >>img.hostile.qcow
truncate -s $((4096 + (1 << 30))) img.hostile.qcow
middle() {
    case $1 in
    1G) echo 512M ;;
    1T) echo 512G ;;
    16T) echo 8T ;;
    hostile) echo 0 ;;
    esac
}
for s in $sizes; do
    "$QEMU_IO" -f qcow -c "write -P 0x5a $(middle "$s") 64k" \
        "img.$s.qcow" >/dev/null
done

for i in $(seq "$runs"); do
    for s in $sizes hostile; do
        f=img.$s.qcow
        at=$(middle "$s")
        measure "info.qemu.$s" "$QEMU_IMG" info -f qcow "$f"
        measure "info.qk.$s" "$QCOWKIT" info -f qcow "$f"
        measure "read.qemu.$s" "$QEMU_IO" -f qcow -r -c "read $at 64k" "$f"
        measure "read.qk.$s" "$QCOWKIT" io -f qcow -r -c "read $at 64k" "$f"
    done
done

echo "== results: median wall seconds and peak resident MiB"
printf '%-8s %-12s %10s %10s %10s %10s %12s %12s\n' image command \
    "qemu s" "qcowkit s" "qemu MiB" "qcowkit MiB" "qemu/qk s" "qemu/qk MiB"
for s in $sizes hostile; do
    for c in info read; do
        qs=$(median "$c.qemu.$s" 1)
        ks=$(median "$c.qk.$s" 1)
        qm=$(median "$c.qemu.$s" 2)
        km=$(median "$c.qk.$s" 2)
        printf '%-8s %-12s %10s %10s %10.1f %10.1f %12s %12s\n' "$s" \
            "$c" "$qs" "$ks" "$(awk -v k="$qm" 'BEGIN { print k / 1024 }')" \
            "$(awk -v k="$km" 'BEGIN { print k / 1024 }')" \
            "$(ratio "$qs" "$ks")" "$(ratio "$qm" "$km")"
    done
done
echo
echo "read: 64 KiB in the middle (qemu-io read vs qcowkit io read);"
echo "hostile: a header declaring a 1 GiB L1 table over a sparse file."
