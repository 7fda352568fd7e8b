#!/usr/bin/env bash
# bench/run.sh - qcowkit against qemu-img (and cp), side by side.
#
# usage: bench/run.sh [--small] [--runs N] [--rows abcdefgn] [--dir DIR] [--keep]
#
#   --small     16 MiB of data and fewer bench requests (CI smoke runs)
#   --runs N    runs per command, alternating the tools (default 3, or
#               $BENCH_RUNS); the table shows medians
#   --rows R    only these rows (letters a-g and n, default all)
#   --dir DIR   where to put the data (default $TMPDIR or /var/tmp)
#   --keep      keep the work folder
#
# QCOWKIT (default: build/qcowkit beside this folder) and QEMU_IMG (default:
# qemu-img) name the programs, QEMU_NBD (default: qemu-nbd) row n's
# reference.  Exits 77 when qemu-img is missing.  Row n is left out, with
# a note, when qemu-nbd or nbdcopy is missing.
# See bench/README.md for what each row measures.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
QCOWKIT=${QCOWKIT:-$here/../build/qcowkit}
QEMU_IMG=${QEMU_IMG:-qemu-img}
QEMU_NBD=${QEMU_NBD:-qemu-nbd}
runs=${BENCH_RUNS:-3}
small=0
rows=abcdefgn
dir=${TMPDIR:-/var/tmp}
keep=0

while [ $# -gt 0 ]; do
    case $1 in
    --small) small=1 ;;
    --runs) runs=$2; shift ;;
    --runs=*) runs=${1#--runs=} ;;
    --rows) rows=$2; shift ;;
    --rows=*) rows=${1#--rows=} ;;
    --dir) dir=$2; shift ;;
    --dir=*) dir=${1#--dir=} ;;
    --keep) keep=1 ;;
    -h | --help)
        sed -n '2,16s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    *)
        echo "run.sh: unknown argument '$1' (try --help)" >&2
        exit 2
        ;;
    esac
    shift
done
case $runs in
'' | *[!0-9]* | 0)
    echo "run.sh: --runs needs a positive number" >&2
    exit 2
    ;;
esac

if ! command -v "$QEMU_IMG" >/dev/null 2>&1; then
    echo "run.sh: $QEMU_IMG not found: skipped"
    exit 77
fi
if [ ! -x "$QCOWKIT" ]; then
    echo "run.sh: $QCOWKIT not found (build first, or set QCOWKIT)" >&2
    exit 1
fi

if [ "$small" = 1 ]; then
    mib=16
    d_count=2000  # 4 KiB allocating writes, 80 KiB apart
    e_count=256   # 64 KiB sequential writes: mib MiB
else
    mib=1024
    d_count=50000
    e_count=16384
fi
d_size=4G # 50000 * 80 KiB = 3.8 GiB: every write allocates

case $rows in *n*)
    if ! command -v "$QEMU_NBD" >/dev/null 2>&1 ||
        ! command -v nbdcopy >/dev/null 2>&1; then
        echo "run.sh: row n left out: needs $QEMU_NBD and nbdcopy"
        rows=${rows//n/}
    fi
    ;;
esac

work=$(mktemp -d "$dir/qcowkit-bench.XXXXXX")
server_pid=
cleanup() {
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

# timed KEY CMD...: run CMD (after a sync, so that no dirty pages of an
# earlier run are written back during this one) and append its wall time
# in seconds to t.KEY; "Run completed in X seconds." goes to r.KEY.
timed() {
    local key=$1 s e
    shift
    sync
    s=$(now_ns)
    if ! "$@" >last.out 2>last.err; then
        echo "run.sh: failed: $*" >&2
        cat last.err >&2
        exit 1
    fi
    e=$(now_ns)
    awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f\n", (e - s) / 1e9 }' \
        >>"t.$key"
    sed -n 's/^Run completed in \([0-9.]*\) seconds\.$/\1/p' last.out \
        >>"r.$key"
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
echo "qemu-img:  $("$QEMU_IMG" --version | head -n1)"
echo "qcowkit:   $("$QCOWKIT" --version | head -n1)"
echo "memory:    $(awk '/^MemTotal/ { printf "%d MiB", $2 / 1024 }' \
    /proc/meminfo)"
echo "folder:    $work ($(stat -f -c %T "$work"))"
echo "load avg:  $(cut -d' ' -f1-3 /proc/loadavg) (at start)"
echo "size:      $mib MiB of data, $runs run(s) per command, alternating"
echo

echo "== preparing $mib MiB of data (1/4 zeros, 1/4 random, 1/2 text)"
perl "$here/gen-data.pl" "$mib" >src.raw
if has_row b || has_row n; then
    "$QEMU_IMG" convert -f raw -O qcow src.raw src.qcow
fi

qk() { "$QCOWKIT" "$@"; }
qm() { "$QEMU_IMG" "$@"; }
# QEMU 7.2 exits 1 without a message after writing a good compressed qcow
# image (the checks below read it back); only that case is let through.
qm_c() {
    local rc=0
    "$QEMU_IMG" "$@" 2>qm.err || rc=$?
    cat qm.err >&2
    if [ "$rc" -eq 1 ] && [ ! -s qm.err ]; then
        rc=0
    fi
    return "$rc"
}

# After qemu-img's large output is deleted, the next large writer on the
# same file system pays about 2 s of system time, whichever tool it is
# (seen on ext4 with plain dd too).  An untimed write of the same size
# absorbs it, so that it does not land on the tool that happens to run
# next.
settle() {
    rm -f "$@"
    sync
    dd if=src.raw of=settle.tmp bs=2M status=none
    rm -f settle.tmp
    sync
}

# far_image IMG: a 1 GiB qcow image whose one cluster lies 8 TiB into a
# sparse file (the rest of the file is a hole).  False if the file
# system cannot hold such a file.
far_image() {
    qk create -q -f qcow "$1" 1G && qk io -c 'write -P 7 0 4k' "$1" >/dev/null &&
        perl -e '
use strict;
my ($path, $far) = ($ARGV[0], 8 << 40);
open(my $f, "+<:raw", $path) or die "$path: $!";
my $at = sub { my ($o, $n) = @_; my $b; seek($f, $o, 0); read($f, $b, $n); $b };
my $put = sub { seek($f, $_[0], 0); print $f $_[1] or die "$path: $!" };
my $h = $at->(0, 48);
my $cs = 1 << unpack("C", substr($h, 32, 1));
my $l2 = unpack("Q>", $at->(unpack("Q>", substr($h, 40, 8)), 8));
my $home = unpack("Q>", $at->($l2, 8));
my $data = $at->($home, $cs);
$put->($home, "\0" x $cs);
$put->($far, $data);
$put->($l2, pack("Q>", $far));
close($f) or die "$path: $!";' "$1"
}

# qm_check IMG: qemu-img check, timed when it can check the format; its
# refusal (7.2 has no checks for qcow) goes to g.qemu.why instead.
qm_check() {
    local rc=0
    "$QEMU_IMG" check "$1" >qm.out 2>&1 || rc=$?
    if [ "$rc" -eq 63 ]; then
        sed -n '1s/^qemu-img: //p' qm.out >g.qemu.why
        return 0
    fi
    return "$rc"
}

# nbd_read KEY SERVER...: start SERVER (which serves src.qcow on n.sock),
# time nbdcopy reading the whole export over one connection, stop it.
nbd_read() {
    local key=$1 i
    shift
    rm -f n.sock
    "$@" 2>server.err &
    server_pid=$!
    for i in $(seq 100); do
        [ -S n.sock ] && break
        sleep 0.1
    done
    if [ ! -S n.sock ]; then
        echo "run.sh: $1 did not listen:" >&2
        cat server.err >&2
        exit 1
    fi
    timed "$key" nbdcopy -C 1 "nbd+unix:///?socket=$work/n.sock" null:
    kill "$server_pid"
    wait "$server_pid" 2>/dev/null || true
    server_pid=
}

# ------------------------------------------------------------------- rows
if has_row g && ! far_image g.qcow 2>g.err; then
    echo "g: skipped: no 8 TiB sparse file here ($(head -n1 g.err))"
    rows=${rows//g/}
fi
if has_row g; then
    qm_check g.qcow # untimed: does qemu-img check this format at all?
fi
for i in $(seq "$runs"); do
    echo "== run $i of $runs"
    if has_row a; then
        # (a) convert raw -> qcow (default -t unsafe: no flush) vs cp.
        rm -f a.*
        timed a.qemu qm convert -f raw -O qcow src.raw a.qemu.qcow
        settle a.*
        timed a.qk qk convert -f raw -O qcow src.raw a.qk.qcow
        rm -f a.*
        timed a.cp cp src.raw a.cp.raw
        rm -f a.cp.raw
    fi
    if has_row b; then
        # (b) convert qcow -> raw.
        rm -f b.*
        timed b.qemu qm convert -f qcow -O raw src.qcow b.qemu.raw
        settle b.*
        timed b.qk qk convert -f qcow -O raw src.qcow b.qk.raw
        rm -f b.*
        timed b.cp cp src.raw b.cp.raw
        rm -f b.cp.raw
    fi
    if has_row c; then
        # (c) convert -c raw -> qcow; the outputs are kept for sizes.
        rm -f c.qemu.qcow
        timed c.qemu qm_c convert -c -f raw -O qcow src.raw c.qemu.qcow
        rm -f c.qk.qcow
        timed c.qk qk convert -c -f raw -O qcow src.raw c.qk.qcow
    fi
    if has_row d; then
        # (d) 4 KiB writes 80 KiB apart: each one allocates a cluster.
        args=(bench -w -c "$d_count" -s 4k -S 80k)
        rm -f d.*
        qm create -q -f qcow d.qemu.qcow "$d_size"
        qm create -q -f qcow d.qk.qcow "$d_size"
        qm create -q -f qcow2 d.qemu.qcow2 "$d_size"
        timed d.qemu qm "${args[@]}" -f qcow d.qemu.qcow
        timed d.qk qk "${args[@]}" -f qcow d.qk.qcow
        timed d.qemu2 qm "${args[@]}" -f qcow2 d.qemu.qcow2
    fi
    if has_row e || has_row f; then
        # (e) sequential 64 KiB writes over the whole image.
        args=(bench -w -c "$e_count" -s 64k)
        rm -f e.*
        qm create -q -f qcow e.qemu.qcow "${mib}M"
        qm create -q -f qcow e.qk.qcow "${mib}M"
        qm create -q -f qcow2 e.qemu.qcow2 "${mib}M"
        timed e.qemu qm "${args[@]}" -f qcow e.qemu.qcow
        timed e.qk qk "${args[@]}" -f qcow e.qk.qcow
        timed e.qemu2 qm "${args[@]}" -f qcow2 e.qemu.qcow2
    fi
    if has_row f; then
        # (f) the same read back, each tool its own image.
        args=(bench -c "$e_count" -s 64k)
        timed f.qemu qm "${args[@]}" -f qcow e.qemu.qcow
        timed f.qk qk "${args[@]}" -f qcow e.qk.qcow
        timed f.qemu2 qm "${args[@]}" -f qcow2 e.qemu.qcow2
    fi
    if has_row g; then
        # (g) check of a 1 GiB image whose one cluster is 8 TiB in.
        timed g.qk qk check g.qcow
        if [ ! -e g.qemu.why ]; then
            timed g.qemu qm_check g.qcow
        fi
    fi
    if has_row n; then
        # (n) one NBD client (nbdcopy) reads src.qcow through each server.
        nbd_read n.qemu "$QEMU_NBD" -r -t -f qcow -k "$work/n.sock" src.qcow
        nbd_read n.qk "$QCOWKIT" nbd -r -t -k "$work/n.sock" src.qcow
    fi
done

# ----------------------------------------------------------------- checks
echo "== checking qcowkit's outputs"
if has_row c; then
    "$QEMU_IMG" compare -q -f raw -F qcow src.raw c.qk.qcow &&
        echo "c: qcowkit convert -c output reads back as the source"
    "$QEMU_IMG" compare -q -f raw -F qcow src.raw c.qemu.qcow &&
        echo "c: qemu-img convert -c output reads back as the source"
fi
if has_row a; then
    rm -f a.*
    "$QCOWKIT" convert -f raw -O qcow src.raw a.qk.qcow
    "$QEMU_IMG" compare -q -f raw -F qcow src.raw a.qk.qcow &&
        echo "a: qcowkit convert output reads back as the source"
    rm -f a.*
fi
if has_row b; then
    "$QCOWKIT" convert -f qcow -O raw src.qcow b.qk.raw
    cmp src.raw b.qk.raw && echo "b: qcowkit convert -O raw output equals the source"
    rm -f b.*
fi
if has_row e; then
    "$QEMU_IMG" compare -q -f qcow -F qcow e.qemu.qcow e.qk.qcow &&
        echo "e: qcowkit's and qemu-img's written images are identical"
fi
echo

# ------------------------------------------------------------------ table
echo "== results: median wall seconds of $runs run(s) (bench rows also show"
echo "   the median of the 'Run completed in' figure)"
printf '%-4s %-40s %-18s %10s %10s\n' row test tool wall run
line() { # line ROW TEST TOOL KEY
    printf '%-4s %-40s %-18s %10s %10s\n' "$1" "$2" "$3" \
        "$(median "t.$4")" "$(median "r.$4")"
}
if has_row a; then
    line a "convert -O qcow raw->qcow ${mib} MiB" cp a.cp
    line a "" qemu-img a.qemu
    line a "" qcowkit a.qk
fi
if has_row b; then
    line b "convert -O raw qcow->raw ${mib} MiB" cp b.cp
    line b "" qemu-img b.qemu
    line b "" qcowkit b.qk
fi
if has_row c; then
    line c "convert -c raw->qcow ${mib} MiB" qemu-img c.qemu
    line c "" qcowkit c.qk
fi
if has_row d; then
    line d "bench -w -c $d_count -s 4k -S 80k ($d_size)" "qemu-img qcow" d.qemu
    line d "" "qemu-img qcow2" d.qemu2
    line d "" "qcowkit qcow" d.qk
fi
if has_row e; then
    line e "bench -w -c $e_count -s 64k (${mib} MiB)" "qemu-img qcow" e.qemu
    line e "" "qemu-img qcow2" e.qemu2
    line e "" "qcowkit qcow" e.qk
fi
if has_row f; then
    line f "bench -c $e_count -s 64k (read back)" "qemu-img qcow" f.qemu
    line f "" "qemu-img qcow2" f.qemu2
    line f "" "qcowkit qcow" f.qk
fi
if has_row g; then
    line g "check, one cluster 8 TiB into the file" qemu-img g.qemu
    line g "" qcowkit g.qk
fi
if has_row n; then
    line n "nbdcopy -C 1 nbd -> null: ${mib} MiB" qemu-nbd n.qemu
    line n "" "qcowkit nbd" n.qk
fi

echo
echo "== ratios (of medians)"
m() { median "t.$1"; }
if has_row a; then
    echo "a: qcowkit / cp = $(ratio "$(m a.qk)" "$(m a.cp)") (target <= 1.5)," \
        "qemu-img / qcowkit = $(ratio "$(m a.qemu)" "$(m a.qk)")"
fi
if has_row b; then
    echo "b: qcowkit / cp = $(ratio "$(m b.qk)" "$(m b.cp)") (target <= 1.5)," \
        "qemu-img / qcowkit = $(ratio "$(m b.qemu)" "$(m b.qk)")"
fi
if has_row c; then
    qs=$(stat -c %s c.qemu.qcow)
    ks=$(stat -c %s c.qk.qcow)
    echo "c: qemu-img / qcowkit = $(ratio "$(m c.qemu)" "$(m c.qk)")" \
        "(target >= 8); output bytes: qemu-img $qs, qcowkit $ks" \
        "(qcowkit / qemu-img = $(ratio "$ks" "$qs"), target <= 1)"
fi
for r in d e f; do
    has_row $r || continue
    echo "$r: qemu-img qcow / qcowkit = $(ratio "$(m $r.qemu)" "$(m $r.qk)")," \
        "qemu-img qcow2 / qcowkit = $(ratio "$(m $r.qemu2)" "$(m $r.qk)")"
done
if has_row g; then
    if [ -e g.qemu.why ]; then
        echo "g: qcowkit check $(m g.qk) s; qemu-img: $(cat g.qemu.why)"
    else
        echo "g: qemu-img / qcowkit = $(ratio "$(m g.qemu)" "$(m g.qk)")"
    fi
fi
if has_row n; then
    echo "n: qcowkit nbd / qemu-nbd = $(ratio "$(m n.qk)" "$(m n.qemu)")" \
        "(wall time of nbdcopy reading the export)"
fi
echo "load avg:  $(cut -d' ' -f1-3 /proc/loadavg) (at end)"
