#!/bin/bash
# nbdinfo against qcowkit nbd: size, flags, export list, and the
# base:allocation map through a backing chain (and of a sparse raw file)
# matching `qcowkit map`.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir
requires nbdinfo python3
MAPCMP=$(dirname "$0")/mapcmp.py
[ -f "$MAPCMP" ] || MAPCMP=$OLDPWD/$(dirname "$0")/mapcmp.py

# base (4 MiB, shorter than the overlay) <- overlay (8 MiB)
"$Q" create -q -f qcow base.qcow 4M
"$Q" io -c 'write -q -P 0x11 0 64k' -c 'write -q -P 0x22 2M 100k' \
    -c 'write -q -z 3M 64k' base.qcow
"$Q" create -q -f qcow -b base.qcow -F qcow top.qcow 8M
"$Q" io -c 'write -q -P 0x33 1M 8k' -c 'write -q -P 0x44 7M 1M' \
    -c 'write -q -P 0x55 2M 4k' top.qcow

start_nbd a -r -t -k "$T/a.sock" -x disk -D "a test disk" top.qcow
A=$PID
U=$(uri a disk)

[ "$(nbdinfo --size "$U")" = 8388608 ] || fail "size: $(nbdinfo --size "$U")"
nbdinfo --json "$U" >info.json
python3 - info.json <<'PY' || fail "nbdinfo --json: $(cat info.json)"
import json, sys
e = json.load(open(sys.argv[1]))["exports"][0]
assert e["export-name"] == "disk", e
assert e["description"] == "a test disk", e
assert e["is_read_only"] is True and e["can_flush"] is True, e
assert e["can_trim"] is False and e["can_zero"] is False, e
assert e["can_multi_conn"] is False, e
assert e["block_size_maximum"] == 32 << 20, e
assert "base:allocation" in e["contexts"], e
PY
nbdinfo --list "nbd+unix:///?socket=$T/a.sock" >list.txt
grep -q 'export="disk"' list.txt || fail "list: $(cat list.txt)"
grep -q 'description: a test disk' list.txt || fail "list: $(cat list.txt)"
# A wrong export name is refused (NBD_REP_ERR_UNKNOWN), and the server
# stays up.
if nbdinfo "$(uri a nope)" >out 2>err; then
    fail "unknown export accepted"
fi
grep -q "nope" err || fail "unknown export: $(cat err)"

nbdinfo --map "$U" >nbd.map
"$Q" map -U --output=json top.qcow >q.map
python3 "$MAPCMP" q.map nbd.map || fail "maps differ"
grep -q "hole,zero" nbd.map || fail "no hole: $(cat nbd.map)"
# The context named explicitly.
nbdinfo --map=base:allocation "$U" >nbd2.map
cmp -s nbd.map nbd2.map || fail "--map=base:allocation differs"
stop_nbd "$A"
[ ! -e "$T/a.sock" ] || fail "socket left behind"
[ ! -e "$T/a.pid" ] || fail "pid file left behind"

# A sparse raw file: holes are reported from SEEK_DATA/SEEK_HOLE.
truncate -s 16M sparse.raw
dd if=/dev/urandom of=sparse.raw bs=64k count=3 seek=10 conv=notrunc status=none
dd if=/dev/urandom of=sparse.raw bs=4k count=1 seek=4000 conv=notrunc status=none
start_nbd b -r -t -f raw -k "$T/b.sock" sparse.raw
B=$PID
nbdinfo --map "$(uri b)" >nbd.map
"$Q" map -U -f raw --output=json sparse.raw >q.map
python3 "$MAPCMP" q.map nbd.map || fail "raw maps differ"
stop_nbd "$B"
echo "info: ok"
