#!/usr/bin/env bash
# bench/nbdkit-http.sh - a qcow image on a web server (nginx on
# 127.0.0.1), copied to a raw file four ways:
#   filter  nbdkit curl URL --filter=qcow, read by nbdcopy (which opens
#           4 connections: the filter advertises multi-conn)
#   filter1 the same with nbdcopy -C 1: one connection
#   qemu    qemu-img convert -f qcow -O raw URL (QEMU's curl driver)
#   bytes   nbdkit curl URL (no filter): the image file's own bytes,
#           read by nbdcopy: what the transfer alone costs (one
#           connection: nbdkit's curl plugin has no multi-conn)
# under two nginx configurations: "debian" (sendfile and tcp_nopush on,
# as Debian's nginx.conf has them) and "plain" (both off).
#
# usage: bench/nbdkit-http.sh [--size MIB] [--runs N] [--qemu-timeout S]
#                             [--dir DIR] [--keep]
#
# The data is bench/gen-data.pl's (1/4 zeros, 1/4 random, 1/2 text),
# made into a qcow image by qemu-img convert.  A qemu-img run that has
# not finished after --qemu-timeout seconds (default 60) is stopped and
# its full time extrapolated from the bytes it had written (allocated
# bytes of its output against those of the filter's); a median over such
# runs is marked "~".  QCOW_FILTER names the filter
# (default: build/nbdkit/nbdkit-qcow-filter.so beside this folder).
# Exits 77 when nbdkit, nbdcopy, nginx, qemu-img or QEMU's curl driver
# (qemu-block-extra) is missing.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
QCOW_FILTER=${QCOW_FILTER:-$here/../build/nbdkit/nbdkit-qcow-filter.so}
mib=1024
runs=${BENCH_RUNS:-3}
qemu_timeout=60
dir=${TMPDIR:-/var/tmp}
keep=0

while [ $# -gt 0 ]; do
    case $1 in
    --size) mib=$2; shift ;;
    --runs) runs=$2; shift ;;
    --qemu-timeout) qemu_timeout=$2; shift ;;
    --dir) dir=$2; shift ;;
    --keep) keep=1 ;;
    -h | --help)
        sed -n '2,27s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    *)
        echo "nbdkit-http.sh: unknown argument '$1' (try --help)" >&2
        exit 2
        ;;
    esac
    shift
done
for v in "$mib" "$runs" "$qemu_timeout"; do
    case $v in
    '' | *[!0-9]* | 0)
        echo "nbdkit-http.sh: --size, --runs and --qemu-timeout need" \
            "positive numbers" >&2
        exit 2
        ;;
    esac
done

source "$here/../tests/harness/functions.sh"
source "$here/../tests/nbdkit/lib.sh"
TEST_NAME=nbdkit-http
SANITIZE=none
requires_filter
requires nginx perl timeout
requires_plugin curl
requires qemu-img
ls /usr/lib/*/qemu/block-curl.so >/dev/null 2>&1 ||
    skip "QEMU's curl driver is not installed (qemu-block-extra)"
TMPDIR=$dir make_tmpdir
if [ "$keep" = 1 ]; then
    trap 'for p in "${SERVERS[@]}"; do end_process "$p"; done; echo "kept $T"' EXIT
fi
cd "$T"

echo "== machine"
echo "nproc:     $(nproc)"
echo "cpu:       $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
echo "kernel:    $(uname -sr)"
echo "memory:    $(awk '/^MemTotal/ { printf "%d MiB", $2 / 1024 }' /proc/meminfo)"
echo "nbdkit:    $(nbdkit --version)"
echo "nbdcopy:   $(nbdcopy --version | head -n1)"
echo "qemu-img:  $(qemu-img --version | head -n1)"
echo "nginx:     $(nginx -v 2>&1)"
echo "folder:    $T ($(stat -f -c %T "$T"))"
echo "load avg:  $(cut -d' ' -f1-3 /proc/loadavg) (at start)"
echo "size:      $mib MiB, $runs run(s) per command, alternating"
echo

echo "== preparing the image"
mkdir www
perl "$here/gen-data.pl" "$mib" >src.raw
qemu-img convert -f raw -O qcow src.raw www/src.qcow
echo "src.qcow:  $(stat -c %s www/src.qcow) bytes"

now() { date +%s.%N; }

# timed OUT CMD...: run CMD after a sync, its wall time in seconds on
# stdout; OUT is removed first.
timed() {
    local out=$1 t0
    shift
    rm -f "$out"
    sync
    t0=$(now)
    "$@" >/dev/null 2>"$T/cmd.err" || {
        cat "$T/cmd.err" >&2
        fail "$* failed"
    }
    awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'
}

copy_filter() {
    nbdkit -U - --filter="$QCOW_FILTER" curl "$URL" --run 'nbdcopy "$uri" out.raw'
}

copy_filter1() {
    nbdkit -U - --filter="$QCOW_FILTER" curl "$URL" --run 'nbdcopy -C 1 "$uri" out.raw'
}

copy_bytes() {
    nbdkit -U - curl "$URL" --run 'nbdcopy "$uri" out.bin'
}

# qemu_run: a time, or an extrapolated one ("~T") after the timeout.
qemu_run() {
    local t0 rc=0 done_bytes all_bytes
    rm -f out.qemu
    sync
    t0=$(now)
    timeout "$qemu_timeout" qemu-img convert -f qcow -O raw "$URL" out.qemu \
        2>"$T/cmd.err" || rc=$?
    if [ "$rc" = 0 ]; then
        awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'
        return
    fi
    [ "$rc" = 124 ] || { cat "$T/cmd.err" >&2; fail "qemu-img convert: exit $rc"; }
    done_bytes=$(du -B1 out.qemu | cut -f1)
    all_bytes=$(du -B1 out.raw | cut -f1)
    echo "qemu-img: $done_bytes of $all_bytes bytes in ${qemu_timeout} s" >&2
    awk -v t="$qemu_timeout" -v d="$done_bytes" -v a="$all_bytes" \
        'BEGIN { printf "~%.0f", (d > 0 ? t * a / d : 1e9) }'
}

median() {
    tr ' ' '\n' | sed '/^$/d; s/^~//' | sort -g | awk '{ v[NR] = $1 }
        END { printf "%s", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

ratio() {
    awk -v a="${1#\~}" -v b="${2#\~}" 'BEGIN { printf "%.1f", a / b }'
}

ROWS=()
for config in debian plain; do
    [ $config = debian ] && NGINX_SENDFILE=on || NGINX_SENDFILE=off
    export NGINX_SENDFILE
    start_nginx "$T/www"
    NGINX=$PID
    URL=http://127.0.0.1:$HTTP_PORT/src.qcow
    echo "== $config (sendfile $NGINX_SENDFILE, tcp_nopush $NGINX_SENDFILE)"
    tf=() t1=() tb=() tq=()
    for r in $(seq "$runs"); do
        tf+=("$(timed out.raw copy_filter)")
        [ "$r" = 1 ] && { cmp src.raw out.raw || fail "filter copy differs"; }
        t1+=("$(timed out.raw copy_filter1)")
        tb+=("$(timed out.bin copy_bytes)")
        tq+=("$(qemu_run)")
        echo "run $r: filter ${tf[-1]} s, filter1 ${t1[-1]} s," \
            "bytes ${tb[-1]} s, qemu ${tq[-1]} s"
    done
    mf=$(echo "${tf[*]}" | median)
    m1=$(echo "${t1[*]}" | median)
    mb=$(echo "${tb[*]}" | median)
    mq=$(echo "${tq[*]}" | median)
    case "${tq[*]}" in *~*) mq="~$mq" ;; esac
    ROWS+=("$config $mf $m1 $mb $mq $(ratio "$mq" "$mf") $(ratio "$mf" "$mb")
        $(ratio "$m1" "$mb")")
    end_process "$NGINX"
    echo
done

echo "== medians in seconds (~: extrapolated from a stopped run)"
echo "| nginx | filter | filter1 | bytes | qemu-img | qemu-img / filter |" \
    "filter / bytes | filter1 / bytes |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for row in "${ROWS[@]}"; do
    # shellcheck disable=SC2086
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' $row
done
