#!/usr/bin/env bash
# bench/fuse.sh - qcowkit mount against libqcow's qcowmount, and parallel
# writers through qcowkit mount against the same through qcowkit nbd.
#
# usage: bench/fuse.sh [--small] [--runs N] [--rows czrp] [--writers N]
#                      [--dir DIR] [--keep]
#
#   --small      64 MiB of data instead of 1 GiB (a quick smoke run)
#   --runs N     runs per command, alternating the tools (default 5, or
#                $BENCH_RUNS); the table shows medians
#   --rows R     only these rows (default czrp; see bench/README.md)
#   --writers N  parallel writers of row p (default 4)
#   --dir DIR    where to put the data (default $TMPDIR or /var/tmp)
#   --keep       keep the work folder
#
# QCOWKIT (default: build/qcowkit beside this folder), QCOWMOUNT (default:
# qcowmount) and QEMU_IMG (default: qemu-img) name the programs.  Exits 77
# when /dev/fuse, fusermount3, qemu-img or perl is missing; rows c, z and
# r are left out without qcowmount, row p without nbdcopy.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
QCOWKIT=${QCOWKIT:-$here/../build/qcowkit}
QCOWMOUNT=${QCOWMOUNT:-qcowmount}
QEMU_IMG=${QEMU_IMG:-qemu-img}
runs=${BENCH_RUNS:-5}
small=0
rows=czrp
writers=4
dir=${TMPDIR:-/var/tmp}
keep=0

while [ $# -gt 0 ]; do
    case $1 in
    --small) small=1 ;;
    --runs) runs=$2; shift ;;
    --runs=*) runs=${1#--runs=} ;;
    --rows) rows=$2; shift ;;
    --rows=*) rows=${1#--rows=} ;;
    --writers) writers=$2; shift ;;
    --writers=*) writers=${1#--writers=} ;;
    --dir) dir=$2; shift ;;
    --dir=*) dir=${1#--dir=} ;;
    --keep) keep=1 ;;
    -h | --help)
        sed -n '2,19s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    *)
        echo "fuse.sh: unknown argument '$1' (try --help)" >&2
        exit 2
        ;;
    esac
    shift
done
for n in "$runs" "$writers"; do
    case $n in
    '' | *[!0-9]* | 0)
        echo "fuse.sh: --runs and --writers need a positive number" >&2
        exit 2
        ;;
    esac
done

skip() {
    echo "fuse.sh: skipped: $*"
    exit 77
}
[ -c /dev/fuse ] || skip "/dev/fuse is missing"
for p in fusermount3 "$QEMU_IMG" perl; do
    command -v "$p" >/dev/null 2>&1 || skip "$p not found"
done
if [ ! -x "$QCOWKIT" ]; then
    echo "fuse.sh: $QCOWKIT not found (build first, or set QCOWKIT)" >&2
    exit 1
fi
if ! command -v "$QCOWMOUNT" >/dev/null 2>&1; then
    echo "fuse.sh: rows c, z and r left out: $QCOWMOUNT not found" \
        "(Debian: libqcow-utils)"
    rows=${rows//[czr]/}
fi
case $rows in *p*)
    if ! command -v nbdcopy >/dev/null 2>&1; then
        echo "fuse.sh: row p left out: nbdcopy not found (Debian: libnbd-bin)"
        rows=${rows//p/}
    fi
    ;;
esac
[ -n "$rows" ] || skip "no row can run here"

mib=1024
[ "$small" = 1 ] && mib=64

work=$(mktemp -d "$dir/qcowkit-fuse.XXXXXX")
server_pid=
cleanup() {
    local m
    for m in "$work/mnt" "$work/wmnt"; do
        if grep -q " $m fuse" /proc/mounts 2>/dev/null; then
            fusermount3 -u "$m" 2>/dev/null || fusermount3 -u -z "$m" || true
        fi
    done
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [ "$keep" = 1 ]; then
        echo "work folder kept: $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
cd "$work"

has_row() { case $rows in *"$1"*) return 0 ;; esac; return 1; }

now_ns() { date +%s%N; }

# record KEY START: append the seconds since START (ns) to t.KEY.
record() {
    awk -v s="$2" -v e="$(now_ns)" 'BEGIN { printf "%.3f\n", (e - s) / 1e9 }' \
        >>"t.$1"
}

median() {
    if [ ! -s "$1" ]; then
        echo "-"
        return
    fi
    sort -g "$1" | awk '{ a[NR] = $1 }
        END { if (NR % 2) printf "%.3f", a[(NR + 1) / 2];
              else printf "%.3f", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

ratio() { # ratio A B: A / B
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a == "-" || b == "-" || b + 0 == 0) print "-";
        else printf "%.2f", a / b }'
}

# ---------------------------------------------------------------- machine
echo "== machine"
echo "nproc:     $(nproc)"
echo "cpu:       $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo |
    head -n1)"
echo "kernel:    $(uname -sr)"
echo "libfuse:   $(fusermount3 -V 2>&1 | head -n1)"
if command -v "$QCOWMOUNT" >/dev/null 2>&1; then
    echo "qcowmount: $("$QCOWMOUNT" -V 2>&1 | head -n1)"
fi
echo "qcowkit:   $("$QCOWKIT" --version | head -n1)"
echo "memory:    $(awk '/^MemTotal/ { printf "%d MiB", $2 / 1024 }' \
    /proc/meminfo)"
echo "folder:    $work ($(stat -f -c %T "$work"))"
echo "load avg:  $(cut -d' ' -f1-3 /proc/loadavg) (at start)"
echo "size:      $mib MiB of data, $runs run(s) per command, alternating"
echo

echo "== preparing $mib MiB of data (1/4 zeros, 1/4 random, 1/2 text)"
perl "$here/gen-data.pl" "$mib" >src.raw
if has_row c || has_row r; then
    "$QEMU_IMG" convert -f raw -O qcow src.raw plain.qcow
fi
if has_row z; then
    # QEMU 7.2 exits 1 without a message after writing a good compressed
    # qcow image (the check at the end reads it back).
    rc=0
    "$QEMU_IMG" convert -c -f raw -O qcow src.raw packed.qcow 2>qm.err || rc=$?
    if [ "$rc" -ne 0 ] && { [ "$rc" -ne 1 ] || [ -s qm.err ]; }; then
        cat qm.err >&2
        exit 1
    fi
fi
mkdir mnt
touch wmnt

# Drop the page cache of a file (POSIX_FADV_DONTNEED through dd).
uncache() { dd if="$1" iflag=nocache count=0 status=none; }

# wait_file F: until the mount shows F (qcowmount returns before).
wait_file() {
    local i
    for i in $(seq 100); do
        [ -e "$1" ] && return 0
        sleep 0.1
    done
    echo "fuse.sh: $1 did not appear" >&2
    exit 1
}

# cat_read KEY TOOL IMG COLD: mount IMG read-only with TOOL (qk or qm),
# time `cat` of the disk to /dev/null, unmount.  COLD=1 drops the image's
# page cache first; else it is read once so that it is all cached.
cat_read() {
    local key=$1 tool=$2 img=$3 cold=$4 file s
    if [ "$cold" = 1 ]; then
        uncache "$img"
    else
        cat "$img" >/dev/null
    fi
    if [ "$tool" = qk ]; then
        "$QCOWKIT" mount -r "$img" mnt
        file=mnt/disk
    else
        "$QCOWMOUNT" "$img" mnt >/dev/null
        file=mnt/qcow1
    fi
    wait_file "$file"
    s=$(now_ns)
    cat "$file" >/dev/null
    record "$key" "$s"
    fusermount3 -u mnt
    # qcowmount's process ends after the unmount returns.
    sleep 0.2
}

# fuse_writers KEY: N dd writers, each a 1/N part of src.raw at its
# place, through qcowkit mount on a fresh image; each ends with fsync.
fuse_writers() {
    local part=$((mib / writers)) i s pids=()
    rm -f wf.qcow
    "$QEMU_IMG" create -q -f qcow wf.qcow "${mib}M"
    "$QCOWKIT" mount wf.qcow wmnt
    sync
    s=$(now_ns)
    for ((i = 0; i < writers; i++)); do
        dd if=src.raw of=wmnt bs=1M skip=$((i * part)) seek=$((i * part)) \
            count="$part" conv=notrunc,fsync status=none &
        pids+=($!)
    done
    for i in "${pids[@]}"; do
        wait "$i" || { echo "fuse.sh: a writer failed" >&2; exit 1; }
    done
    record "$1" "$s"
    fusermount3 -u wmnt
    sleep 0.2
}

# nbd_writers KEY: nbdcopy with N connections and N threads writes
# src.raw through qcowkit nbd (multi-conn: -e 0) to a fresh image, then
# flushes.
nbd_writers() {
    local i s
    rm -f wn.qcow n.sock
    "$QEMU_IMG" create -q -f qcow wn.qcow "${mib}M"
    "$QCOWKIT" nbd -e 0 -k "$work/n.sock" wn.qcow 2>server.err &
    server_pid=$!
    for i in $(seq 100); do
        [ -S n.sock ] && break
        sleep 0.1
    done
    [ -S n.sock ] || { echo "fuse.sh: qcowkit nbd did not listen" >&2; exit 1; }
    sync
    s=$(now_ns)
    nbdcopy -C "$writers" -T "$writers" --flush src.raw \
        "nbd+unix:///?socket=$work/n.sock"
    record "$1" "$s"
    # Without -t the server ends with its last client; else end it.
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
}

# ------------------------------------------------------------------- rows
for i in $(seq "$runs"); do
    echo "== run $i of $runs"
    if has_row c; then
        cat_read c.qm qm plain.qcow 1
        cat_read c.qk qk plain.qcow 1
    fi
    if has_row z; then
        cat_read z.qm qm packed.qcow 1
        cat_read z.qk qk packed.qcow 1
    fi
    if has_row r; then
        cat_read r.qm qm plain.qcow 0
        cat_read r.qk qk plain.qcow 0
    fi
    if has_row p; then
        fuse_writers p.fuse
        nbd_writers p.nbd
    fi
done

# ----------------------------------------------------------------- checks
echo "== checking what was read and written"
for img in plain.qcow packed.qcow; do
    [ -e "$img" ] || continue
    "$QCOWKIT" mount -r "$img" mnt
    cmp src.raw mnt/disk && echo "qcowkit mount reads $img as the source"
    fusermount3 -u mnt
done
if has_row p; then
    "$QEMU_IMG" compare -q -f raw -F qcow src.raw wf.qcow &&
        echo "p: the image written through qcowkit mount reads as the source"
    "$QEMU_IMG" compare -q -f raw -F qcow src.raw wn.qcow &&
        echo "p: the image written through qcowkit nbd reads as the source"
fi
echo

# ------------------------------------------------------------------ table
echo "== results: median wall seconds of $runs run(s)"
printf '%-4s %-44s %-22s %8s\n' row test tool wall
line() { printf '%-4s %-44s %-22s %8s\n' "$1" "$2" "$3" "$(median "t.$4")"; }
if has_row c; then
    line c "cold cat, qcow by qemu-img convert" qcowmount c.qm
    line c "" "qcowkit mount" c.qk
fi
if has_row z; then
    line z "cold cat, qcow by qemu-img convert -c" qcowmount z.qm
    line z "" "qcowkit mount" z.qk
fi
if has_row r; then
    line r "cat, image file in the host's cache" qcowmount r.qm
    line r "" "qcowkit mount" r.qk
fi
if has_row p; then
    line p "$writers writers, ${mib} MiB, fresh image" "$writers dd -> mount" p.fuse
    line p "" "nbdcopy -C $writers -> nbd" p.nbd
fi

echo
echo "== ratios (of medians)"
m() { median "t.$1"; }
for r in c z r; do
    has_row $r || continue
    echo "$r: qcowkit mount / qcowmount = $(ratio "$(m $r.qk)" "$(m $r.qm)")" \
        "(target <= 0.8)"
done
if has_row p; then
    echo "p: mount / nbd = $(ratio "$(m p.fuse)" "$(m p.nbd)")" \
        "(wall time of $writers parallel writers, fsync or flush included)"
fi
echo "load avg:  $(cut -d' ' -f1-3 /proc/loadavg) (at end)"
