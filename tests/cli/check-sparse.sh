#!/bin/bash
# qcowkit check on a file with a huge hole: the only far cluster lies
# 8 TiB into the file.  Check and repair follow the data and the tables,
# never the file's apparent size: each run <= 3 s (10 s under ASan) and,
# in plain builds, <= 128 MiB of address space.  Leaks and clashes that
# lie far out in the hole are still found.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
requires python3
enter_tmpdir

FAR=$((8 << 40))
truncate -s $((FAR + 65536)) probe 2>/dev/null ||
    skip "this file system cannot hold an 8 TiB sparse file"
rm -f probe

TIME_BAR_MS=3000
MEM_BAR_KIB=131072
if grep -qa __asan_init "$Q"; then
    # ASan reserves terabytes of shadow memory and runs slower.
    note "ASan build: no memory bar, time bar 10 s"
    TIME_BAR_MS=10000
    MEM_BAR_KIB=
fi

# bounded WHAT CMD...: run CMD under the bars; output in out and err,
# exit status in $RC.
bounded() {
    local what=$1 start ms
    shift
    start=$(date +%s%N)
    RC=0
    (
        [ -z "$MEM_BAR_KIB" ] || ulimit -v "$MEM_BAR_KIB"
        exec timeout 60 "$@"
    ) >out 2>err || RC=$?
    ms=$((($(date +%s%N) - start) / 1000000))
    [ "$RC" != 124 ] || fail "$what: still running after 60 s"
    [ "$ms" -le "$TIME_BAR_MS" ] ||
        fail "$what took $ms ms (bar: $TIME_BAR_MS ms)"
    note "$what: $ms ms, exit $RC"
}

# far IMG: 1 GiB qcow whose guest cluster 0 lives at 8 TiB; its first
# home is zeroed (not a leak).  Prints the L2 table's offset.
far() {
    rm -f "$1"
    "$Q" create -q -f qcow "$1" 1G
    "$Q" io -c 'write -P 7 0 4k' "$1" >/dev/null
    python3 -S - "$1" "$FAR" <<'EOF'
import struct, sys
path, far = sys.argv[1], int(sys.argv[2])
with open(path, 'r+b') as f:
    h = f.read(48)
    cb, l1 = h[32], struct.unpack('>Q', h[40:48])[0]
    f.seek(l1)
    l2 = struct.unpack('>Q', f.read(8))[0]
    f.seek(l2)
    home = struct.unpack('>Q', f.read(8))[0]
    f.seek(home)
    data = f.read(1 << cb)
    f.seek(home)
    f.write(bytes(1 << cb))
    f.seek(far)
    f.write(data)
    f.seek(l2)
    f.write(struct.pack('>Q', far))
print(l2)
EOF
}

# poke IMG OFFSET VALUE: a big-endian 64-bit value at OFFSET.
poke() {
    python3 -S -c '
import struct, sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2]))
    f.write(struct.pack(">Q", int(sys.argv[3])))' "$@"
}

# ---------------------------------------------------------------- clean

far far.qcow >/dev/null
bounded "check" "$Q" check far.qcow
[ "$RC" = 0 ] || fail "check of a clean sparse image: exit $RC: $(cat out err)"
grep -q "No errors were found" out || fail "check output: $(cat out)"
grep -q "Image end offset: $((FAR + 4096))" out ||
    fail "image end offset: $(cat out)"

bounded "check -r all" "$Q" check -r all far.qcow
[ "$RC" = 0 ] || fail "check -r all: exit $RC: $(cat out err)"
"$Q" io -c 'read -P 7 0 4k' far.qcow >/dev/null ||
    fail "the far cluster's data changed"

# ------------------------------------------------- a leak far in the hole

far leak.qcow >/dev/null
python3 -S -c "
with open('leak.qcow', 'r+b') as f:
    f.seek($((4 << 40)))
    f.write(b'L' * 4096)"
bounded "check (leak at 4 TiB)" "$Q" check leak.qcow
[ "$RC" = 3 ] || fail "a leak at 4 TiB: exit $RC: $(cat out err)"
grep -q "Leaked clusters at offset $((4 << 40)) (4096 bytes)" err ||
    fail "the leak at 4 TiB is not named: $(cat err)"

bounded "check -r leaks (leak at 4 TiB)" "$Q" check -r leaks leak.qcow
[ "$RC" = 0 ] || fail "check -r leaks: exit $RC: $(cat out err)"
expect_rc 0 "$Q" check leak.qcow

# ------------------------------------- two entries on one cluster in the hole

l2=$(far clash.qcow)
poke clash.qcow $((l2 + 8)) $((6 << 40))
poke clash.qcow $((l2 + 16)) $((6 << 40))
bounded "check (clash at 6 TiB)" "$Q" check clash.qcow
[ "$RC" = 2 ] || fail "two entries on one cluster at 6 TiB: exit $RC"
grep -q "cluster at offset $((6 << 40)) (guest offset 8192) is also used" \
    err || fail "the clash at 6 TiB is not named: $(cat err)"

bounded "check -r all (clash at 6 TiB)" "$Q" check -r all clash.qcow
[ "$RC" = 0 ] || fail "check -r all of the clash: exit $RC: $(cat out err)"
expect_rc 0 "$Q" check clash.qcow
"$Q" io -c 'read -P 7 0 4k' clash.qcow >/dev/null ||
    fail "the far cluster's data changed in the repair"

note "ok"
