# shellcheck shell=bash
#
# lib.sh - what the tests of nbdkit-qcow-filter share, on top of
# tests/harness/functions.sh (sourced first).
#
# Environment (meson sets both):
#   QCOW_FILTER  the built nbdkit-qcow-filter.so ("" if not built)
#   SANITIZE     meson's b_sanitize: with address, nbdkit (not built with
#                ASan) is started with the ASan runtime preloaded

# requires_filter: skip unless the filter is built and nbdkit, nbdcopy,
# nbdinfo and qemu-img are installed.
requires_filter() {
    [ -n "${QCOW_FILTER:-}" ] ||
        skip "built without the nbdkit filter (install nbdkit-plugin-dev)"
    [ -f "$QCOW_FILTER" ] || skip "QCOW_FILTER=$QCOW_FILTER does not exist"
    requires nbdkit nbdcopy nbdinfo qemu-img qemu-io python3 cmp
    NBDKIT_ENV=()
    case ${SANITIZE:-none} in
    *address*)
        local asan
        asan=$(${CC:-cc} -print-file-name=libasan.so)
        [ -f "$asan" ] || skip "ASan build, and no libasan.so to preload"
        NBDKIT_ENV=(env "LD_PRELOAD=$asan" ASAN_OPTIONS=detect_leaks=0)
        ;;
    esac
}

# requires_plugin NAME: skip unless nbdkit can load its plugin NAME.
requires_plugin() {
    nbdkit "$1" --dump-plugin >/dev/null 2>&1 ||
        skip "nbdkit's $1 plugin is not installed"
}

# requires_nbdkit_filter NAME: skip unless nbdkit has its filter NAME.
requires_nbdkit_filter() {
    nbdkit --filter="$1" null --dump-plugin >/dev/null 2>&1 ||
        skip "nbdkit's $1 filter is not installed"
}

# start_nbdkit NAME ARGS...: run `nbdkit ARGS...` in the background,
# serving the unix socket $T/NAME.sock, and wait (10 s at most) until it
# listens.  Sets $PID; stderr goes to $T/NAME.err; ended on exit.
start_nbdkit() {
    local name=$1 i
    shift
    rm -f "$T/$name.pid" "$T/$name.sock"
    "${NBDKIT_ENV[@]}" nbdkit -f -U "$T/$name.sock" -P "$T/$name.pid" "$@" \
        2>"$T/$name.err" &
    PID=$!
    SERVERS+=("$PID")
    for i in $(seq 100); do
        [ -s "$T/$name.pid" ] && return 0
        if ! kill -0 "$PID" 2>/dev/null; then
            cat "$T/$name.err" >&2
            fail "nbdkit $* exited before listening"
        fi
        sleep 0.1
    done
    fail "nbdkit $* did not listen within 10 s"
}

# same_export URI REF WHAT: nbdcopy of the export equals the file REF.
same_export() {
    run nbdcopy "$1" "$T/export.raw"
    same_files "$REF_DIR/$2" "$T/export.raw" "$3"
    rm -f "$T/export.raw"
}

# same_map URI IMG WHAT: the holes `nbdinfo --map` shows are those
# `qemu-img map` finds in IMG (and its chain): the same data ranges.
same_map() {
    local uri=$1 img=$2
    shift 2
    nbdinfo --map --json "$uri" >"$T/nbd.map" || fail "$*: nbdinfo --map"
    qemu-img map --output=json "$@" >"$T/qemu.map" ||
        fail "qemu-img map $*"
    python3 - "$T/nbd.map" "$T/qemu.map" <<'PY' || fail "$img: maps differ"
import json, sys
def merged(runs):
    out = []
    for start, length, data in runs:
        if out and out[-1][2] == data and out[-1][0] + out[-1][1] == start:
            out[-1][1] += length
        else:
            out.append([start, length, data])
    return out
nbd = merged((e["offset"], e["length"], not e["type"] & 2)
             for e in json.load(open(sys.argv[1])))
qemu = merged((e["start"], e["length"], e["data"])
              for e in json.load(open(sys.argv[2])))
if nbd != qemu:
    print("nbdinfo --map:", nbd, "\nqemu-img map:", qemu, file=sys.stderr)
    sys.exit(1)
if not any(not d for _, _, d in nbd):
    print("no hole in the map", file=sys.stderr)
    sys.exit(1)
PY
}

# make_images DIR: the test images, and their reference reading by
# `qemu-img convert -O raw` in $REF_DIR/NAME.raw:
#   data.qcow  data with holes, a size that is not a whole cluster
#   comp.qcow  compressed clusters (and holes)
#   enc.qcow   AES-encrypted with password $PASSWORD
#   top.qcow   an overlay naming base.qcow, its backing file, which is
#              shorter (6 MiB): past its end the guest reads zeros
PASSWORD=correct-horse
make_images() {
    local d=$1 size=$((8 * 1024 * 1024 + 1536))
    local secret=(--object "secret,id=s,data=$PASSWORD")
    REF_DIR=$T/ref
    mkdir -p "$d" "$REF_DIR"
    make_data "$T/mix.raw" 3000000 11
    run qemu-img create -q -f qcow "$d/data.qcow" "$size"
    run qemu-io -t unsafe -f qcow -c 'write -P 0x5a 0 70000' \
        -c 'write -P 0xa5 5000000 1M' -c "write -P 0x77 $((size - 512)) 512" \
        "$d/data.qcow"
    run qemu-io -t unsafe -f qcow -c "write -P 0 2M 4096" "$d/data.qcow"
    qemu_compress "$T/mix.raw" "$d/comp.qcow"
    run qemu-img convert "${secret[@]}" -f raw -O qcow \
        -o encrypt.format=aes,encrypt.key-secret=s "$T/mix.raw" "$d/enc.qcow"
    run qemu-img create -q -f qcow "$d/base.qcow" 6M
    run qemu-io -t unsafe -f qcow -c 'write -P 0x11 0 4M' \
        -c 'write -P 0x22 5M 512k' "$d/base.qcow"
    run qemu-img create -q -f qcow -b base.qcow -F qcow "$d/top.qcow" "$size"
    run qemu-io -t unsafe -f qcow -c 'write -P 0x33 1M 100000' \
        -c 'write -P 0x44 5000000 2M' "$d/top.qcow"
    local n
    for n in data comp top; do
        run qemu-img convert -O raw "$d/$n.qcow" "$REF_DIR/$n.raw"
    done
    run qemu-img convert "${secret[@]}" --image-opts -O raw \
        "driver=qcow,file.filename=$d/enc.qcow,encrypt.key-secret=s" \
        "$REF_DIR/enc.raw"
}

# in_case FN ARGS...: for run_case: run FN, then end the servers it
# started, not those started before (a case is a subshell, where the
# harness's EXIT trap does not run).
in_case() {
    CASE_FIRST_SERVER=${#SERVERS[@]}
    trap '_end_case_servers' EXIT
    "$@"
}

_end_case_servers() {
    local p
    for p in "${SERVERS[@]:$CASE_FIRST_SERVER}"; do
        end_process "$p"
    done
}

# free_port: a TCP port of 127.0.0.1 that nothing listens on just now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_nginx ROOT: serve the folder ROOT over HTTP on 127.0.0.1:$HTTP_PORT
# with nginx (byte ranges included), one process running as the caller,
# its config, pid, logs and temporary files in $T/nginx; ended on exit.
# Sets $HTTP_PORT and $PID.
start_nginx() {
    local root=$1 n=$T/nginx i try
    requires nginx
    mkdir -p "$n/tmp"
    for try in 1 2 3; do
        HTTP_PORT=$(free_port)
        cat >"$n/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $n/nginx.pid;
error_log $n/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $n/tmp/body;
    proxy_temp_path $n/tmp/proxy;
    fastcgi_temp_path $n/tmp/fastcgi;
    uwsgi_temp_path $n/tmp/uwsgi;
    scgi_temp_path $n/tmp/scgi;
    types { application/octet-stream qcow; }
    server {
        listen 127.0.0.1:$HTTP_PORT;
        root $root;
    }
}
CONF
        nginx -p "$n" -e "$n/error.log" -c "$n/nginx.conf" 2>>"$n/stderr" &
        PID=$!
        SERVERS+=("$PID")
        for i in $(seq 100); do
            if ! kill -0 "$PID" 2>/dev/null; then
                break
            fi
            if python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' \
                "$HTTP_PORT" 2>/dev/null; then
                return 0
            fi
            sleep 0.1
        done
        end_process "$PID"
    done
    cat "$n/stderr" "$n/error.log" >&2 2>/dev/null || true
    fail "nginx did not start on 127.0.0.1"
}
