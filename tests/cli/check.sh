#!/bin/bash
# qcowkit check: output, JSON and exit codes as qemu-img check (0 clean,
# 1 could not check, 2 corruptions, 3 leaks only, 63 no checks for the
# format); leak and corruption repair on crafted images.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir

have python3 || {
    echo "python3 is needed to craft images; skipping" >&2
    exit 77
}

# qc.py: read and patch qcow v1 headers and table entries.
cat >qc.py <<'EOF'
import struct, sys

def header(path):
    with open(path, 'rb') as f:
        d = f.read(48)
    (magic, ver, bfo, bfs, mtime, size, cb, l2b, pad, crypt,
     l1o) = struct.unpack('>4sIQIIQBBHIQ', d)
    return {'size': size, 'cluster_bits': cb, 'l2_bits': l2b, 'l1': l1o}

def get(path, off):
    with open(path, 'rb') as f:
        f.seek(off)
        return struct.unpack('>Q', f.read(8))[0]

def put(path, off, value):
    with open(path, 'r+b') as f:
        f.seek(off)
        f.write(struct.pack('>Q', value))

def l1(path, i):
    """File offset of L1 entry i."""
    return header(path)['l1'] + 8 * i

def l2(path, guest):
    """File offset of the L2 entry of a guest offset."""
    h = header(path)
    cb, l2b = h['cluster_bits'], h['l2_bits']
    table = get(path, l1(path, guest >> (cb + l2b)))
    return table + 8 * ((guest >> cb) & ((1 << l2b) - 1))

def compressed(path, offset, size):
    cb = header(path)['cluster_bits']
    return (1 << 63) | (size << (63 - cb)) | offset

def split(path, entry):
    """(offset, size) of a compressed entry."""
    cb = header(path)['cluster_bits']
    return (entry & ((1 << (63 - cb)) - 1),
            (entry >> (63 - cb)) & ((1 << cb) - 1))

if __name__ == '__main__':
    cmd, path = sys.argv[1], sys.argv[2]
    units = {'k': 1 << 10, 'M': 1 << 20, 'G': 1 << 30}
    args = [int(a[:-1], 0) * units[a[-1]] if a[-1] in units else int(a, 0)
            for a in sys.argv[3:]]
    if cmd == 'get-l2':
        print(get(path, l2(path, args[0])))
    elif cmd == 'set-l2':
        put(path, l2(path, args[0]), args[1])
    elif cmd == 'get-l1':
        print(get(path, l1(path, args[0])))
    elif cmd == 'set-l1':
        put(path, l1(path, args[0]), args[1])
    elif cmd == 'compressed':
        print(compressed(path, args[0], args[1]))
    elif cmd == 'split':
        print(*split(path, args[0]))
    elif cmd == 'poke':  # poke PATH OFFSET COUNT BYTE
        with open(path, 'r+b') as f:
            f.seek(args[0])
            f.write(bytes([args[2]]) * args[1])
    else:
        sys.exit('unknown command ' + cmd)
EOF
qc() { python3 -S qc.py "$@"; }

# json KEY...: values of the JSON object on stdout (python3's json module
# parses it), one per line ('-' if absent); fails if it does not parse.
json() {
    python3 -S -c '
import json, sys
d = json.load(open("out"))
for k in sys.argv[1:]:
    print(d.get(k, "-"))' "$@" || fail "JSON does not parse: $(cat out)"
}

# The member order of qemu-img 7.2's ImageCheck JSON (QDict hash order).
ORDER="image-end-offset compressed-clusters total-clusters corruptions \
corruptions-fixed check-errors leaks leaks-fixed allocated-clusters filename \
format fragmented-clusters"
json_order() {
    local keys want=""
    keys=$(grep -o '^    "[a-z-]*":' out | tr -d '": ' | tr '\n' ' ')
    for k in $ORDER; do
        case " $keys " in *" $k "*) want="$want$k " ;; esac
    done
    [ "$keys" == "$want" ] || fail "JSON member order: $keys, expected $want"
}

# raw_of IMG OUT: the guest data of IMG as a raw file.
raw_of() {
    "$Q" convert -O raw "$1" "$2" || fail "convert $1"
}

# mk IMG [SIZE]: 16 KiB of normal data at 0, 16 KiB compressed at 64 KiB.
mk() {
    rm -f "$1"
    "$Q" create -q -f qcow "$1" "${2:-1M}"
    "$Q" io -c 'write -P 1 0 16k' -c 'write -c -P 2 64k 16k' "$1" >/dev/null
}

# ---------------------------------------------------------------- clean

"$Q" create -q -f qcow empty.qcow 1M
expect_rc 0 "$Q" check empty.qcow
expect_out "No errors were found on the image.
Image end offset: 560"
[ ! -s err ] || fail "stderr of a clean check: $(cat err)"
expect_rc 0 "$Q" check --output=json empty.qcow
expect_out '{
    "image-end-offset": 560,
    "total-clusters": 256,
    "check-errors": 0,
    "filename": "empty.qcow",
    "format": "qcow"
}'
expect_rc 0 "$Q" check -q empty.qcow
expect_out ""
expect_rc 0 "$Q" check -q --output=json empty.qcow
expect_out ""
expect_rc 0 "$Q" check -f qcow -T none -U empty.qcow

mk clean.qcow
expect_rc 0 "$Q" check clean.qcow
expect_out "No errors were found on the image.
8/256 = 3.12% allocated, 0.00% fragmented, 50.00% compressed clusters
Image end offset: $(stat -c %s clean.qcow)"
expect_rc 0 "$Q" check --output=json clean.qcow
python3 -m json.tool out >/dev/null || fail "JSON does not parse: $(cat out)"
json_order
[ "$(json leaks corruptions compressed-clusters allocated-clusters \
    total-clusters check-errors format | tr '\n' ' ')" == \
    "- - 4 8 256 0 qcow " ] || fail "clean JSON: $(cat out)"

# Fragmentation: clusters written in reverse guest order.
"$Q" create -q -f qcow frag.qcow 1M
"$Q" io -c 'write 8k 4k' -c 'write 4k 4k' -c 'write 0 4k' frag.qcow >/dev/null
expect_rc 0 "$Q" check frag.qcow
grep -q "^3/256 = 1.17% allocated, 66.67% fragmented, 0.00% compressed clusters$" out ||
    fail "fragmentation: $(cat out)"
expect_rc 0 "$Q" check --output=json frag.qcow
[ "$(json fragmented-clusters)" == 2 ] || fail "fragmented JSON: $(cat out)"
json_order

# An AES-encrypted image checks without its key: the check reads no data.
"$Q" create -q -f qcow --object secret,id=s0,data=pw \
    -o encrypt.format=aes,encrypt.key-secret=s0 enc.qcow 1M 2>/dev/null
"$Q" io --object secret,id=s0,data=pw --image-opts -c 'write -P 1 0 8k' \
    driver=qcow,file.filename=enc.qcow,encrypt.key-secret=s0 >/dev/null
expect_rc 0 "$Q" check enc.qcow
grep -q "^2/256 = 0.78% allocated" out || fail "encrypted: $(cat out)"
expect_rc 0 "$Q" check --object secret,id=s0,data=pw --image-opts \
    driver=qcow,file.filename=enc.qcow,encrypt.key-secret=s0

# Images made by qcowkit: convert, convert -c, an overlay, a large image.
head -c 1M /dev/urandom >rnd.raw
python3 -c "import sys; sys.stdout.buffer.write(b'A' * (1 << 20) + bytes(65536))" >>rnd.raw
"$Q" convert -O qcow rnd.raw k1.qcow
"$Q" convert -c -O qcow rnd.raw kc.qcow
"$Q" create -q -f qcow -b k1.qcow -F qcow kov.qcow
"$Q" io -c 'write -P 3 100k 300k' -c 'write -c -P 4 1M 64k' kov.qcow >/dev/null
"$Q" create -q -f qcow kbig.qcow 10G
"$Q" io -c 'write -P 5 5G 1M' -c 'write -c -P 6 9G 64k' kbig.qcow >/dev/null
for f in k1 kc kov kbig; do
    expect_rc 0 "$Q" check $f.qcow
    head -1 out | grep -qx "No errors were found on the image." ||
        fail "$f.qcow: $(cat out) $(cat err)"
    [ ! -s err ] || fail "$f.qcow stderr: $(cat err)"
done
expect_rc 0 "$Q" check kc.qcow
grep -Eq "^[0-9]+/528 = .* [1-9][0-9.]*% compressed clusters$" out ||
    fail "kc.qcow has compressed clusters: $(cat out)"

# Images made by qemu-img and qemu-io.
if have qemu-img && have qemu-io; then
    qemu-img convert -f raw -O qcow rnd.raw q1.qcow
    # qemu-img 7.2 writes a whole compressed qcow image, then exits 1
    # without a message (a known quirk; see tests/harness/functions.sh).
    qemu-img convert -c -f raw -O qcow rnd.raw qc.qcow 2>qerr || true
    [ ! -s qerr ] || fail "qemu-img convert -c: $(cat qerr)"
    qemu-img create -q -f qcow -b q1.qcow -F qcow qov.qcow
    qemu-io -c 'write -P 3 100k 300k' -c 'write -c -P 4 1M 512' qov.qcow >/dev/null
    qemu-img create -q -f qcow qbig.qcow 10G
    qemu-io -c 'write -P 5 5G 1M' -c 'write -c -P 6 9G 4k' qbig.qcow >/dev/null
    for f in q1 qc qov qbig; do
        expect_rc 0 "$Q" check $f.qcow
        head -1 out | grep -qx "No errors were found on the image." ||
            fail "$f.qcow: $(cat out) $(cat err)"
        [ ! -s err ] || fail "$f.qcow stderr: $(cat err)"
    done
    expect_rc 0 "$Q" check --output=json qc.qcow
    [ "$(json compressed-clusters)" != "-" ] || fail "qc.qcow: $(cat out)"
    expect_rc 0 "$Q" check --output=json qbig.qcow
    [ "$(json compressed-clusters allocated-clusters | tr '\n' ' ')" == "1 257 " ] ||
        fail "qbig.qcow: $(cat out)"

    # Human and JSON text as qemu-img's, on a qcow2 image with the same
    # kind of findings (qemu-img cannot check qcow v1).
    qemu-img create -q -f qcow2 ref.qcow2 1M
    expect_rc 0 qemu-img check ref.qcow2
    qemu_out=$(cat out)
    expect_rc 0 "$Q" check empty.qcow
    [ "$(head -1 out)" == "$(echo "$qemu_out" | head -1)" ] ||
        fail "first line differs from qemu-img's: $(head -1 out)"
fi

# ----------------------------------------------------------------- leaks

# A compressed write over allocated clusters leaks the old clusters.
mk leak.qcow
"$Q" io -c 'write -c -P 3 0 8k' leak.qcow >/dev/null
raw_of leak.qcow leak-before.raw
expect_rc 3 "$Q" check leak.qcow
expect_out "
2 leaked clusters were found on the image.
This means waste of disk space, but no harm to data.
8/256 = 3.12% allocated, 0.00% fragmented, 75.00% compressed clusters
Image end offset: $(stat -c %s leak.qcow)"
expect_err "^Leaked clusters at offset 8192 \(8192 bytes\)$"
expect_rc 3 "$Q" check -q leak.qcow
expect_out ""
expect_err "^Leaked clusters at offset"
expect_rc 3 "$Q" check --output=json leak.qcow
json_order
[ "$(json leaks corruptions leaks-fixed | tr '\n' ' ')" == "2 - - " ] ||
    fail "leak JSON: $(cat out)"

cp leak.qcow leak2.qcow
cp leak.qcow leak2.qcow.orig
expect_rc 0 "$Q" check -r leaks leak.qcow
expect_out "The following inconsistencies were found and repaired:

    2 leaked clusters
    0 corruptions

Double checking the fixed image now...
No errors were found on the image.
8/256 = 3.12% allocated, 0.00% fragmented, 75.00% compressed clusters
Image end offset: $(stat -c %s leak.qcow)"
grep -q "^Leaked clusters at offset 8192 (8192 bytes)$" err || fail "$(cat err)"
expect_rc 0 "$Q" check leak.qcow
raw_of leak.qcow leak-after.raw
cmp leak-before.raw leak-after.raw || fail "-r leaks changed the data"
expect_rc 0 "$Q" check -r leaks --output=json leak2.qcow
json_order
[ "$(json leaks leaks-fixed corruptions-fixed | tr '\n' ' ')" == "- 2 - " ] ||
    fail "-r leaks JSON: $(cat out)"
expect_rc 0 "$Q" check leak2.qcow

# Junk clusters appended to the file: leaked, and -r leaks cuts them off.
mk junk.qcow
size=$(stat -c %s junk.qcow)
raw_of junk.qcow junk-before.raw
# Pad to the next cluster, then two clusters of junk.
python3 -c "
import os
n = os.path.getsize('junk.qcow')
with open('junk.qcow', 'ab') as f:
    f.write(bytes(-n % 4096) + b'\xaa' * 8192)"
expect_rc 3 "$Q" check junk.qcow
grep -q "^2 leaked clusters were found on the image.$" out || fail "$(cat out)"
grep -q "^Image end offset: $size$" out || fail "end offset: $(cat out)"
expect_rc 0 "$Q" check -r all junk.qcow
grep -q "^    2 leaked clusters$" out || fail "$(cat out)"
[ "$(stat -c %s junk.qcow)" == "$size" ] || fail "junk not cut off"
expect_rc 0 "$Q" check junk.qcow
raw_of junk.qcow junk-after.raw
cmp junk-before.raw junk-after.raw || fail "-r all changed the data"

# qemu-io overwriting compressed clusters of qemu-img's leaks the space
# they were packed in (QEMU's qcow driver never frees clusters).
if have qemu-img && have qemu-io; then
    python3 -c "open('text.raw', 'w').write(('hello\\n' * 174763)[:1 << 20])"
    qemu-img convert -c -f raw -O qcow text.raw qleak.qcow 2>qerr || true
    [ ! -s qerr ] || fail "qemu-img convert -c: $(cat qerr)"
    qemu-io -c 'write -P 9 0 512k' qleak.qcow >/dev/null
    raw_of qleak.qcow qleak-before.raw
    expect_rc 3 "$Q" check qleak.qcow
    grep -q "^16 leaked clusters were found on the image.$" out || fail "$(cat out)"
    expect_rc 0 "$Q" check -r leaks qleak.qcow
    expect_rc 0 "$Q" check qleak.qcow
    raw_of qleak.qcow qleak-after.raw
    cmp qleak-before.raw qleak-after.raw || fail "-r leaks changed qemu's data"
    qemu-img convert -f qcow -O raw qleak.qcow qleak-qemu.raw
    cmp qleak-before.raw qleak-qemu.raw || fail "QEMU reads the repaired image"
fi

# ----------------------------------------------------------- corruptions

# corrupt NAME WHAT-PATTERN: IMG is corrupt (exit 2, one error), -r leaks
# leaves it alone, -r all clears the bad entry, and it then checks clean.
corrupt() {
    local img=$1 pattern=$2 sum
    expect_rc 2 "$Q" check "$img"
    grep -q "^1 errors were found on the image.$" out || fail "$img: $(cat out)"
    grep -q "^Data may be corrupted, or further writes to the image may corrupt it.$" out ||
        fail "$img: $(cat out)"
    [ "$(head -1 out)" == "" ] || fail "$img: no blank first line"
    grep -Eq "^ERROR .*$pattern" err || fail "$img: stderr $(cat err)"
    expect_rc 2 "$Q" check --output=json "$img"
    json_order
    [ "$(json corruptions)" == 1 ] || fail "$img JSON: $(cat out)"
    # -r leaks does not touch an image with corruptions.
    sum=$(sha256sum <"$img")
    expect_rc 2 "$Q" check -r leaks "$img"
    grep -q "^1 errors were found on the image.$" out || fail "$img: $(cat out)"
    grep -q "^qcowkit: Leaks were not repaired" err || fail "$img: $(cat err)"
    [ "$(sha256sum <"$img")" == "$sum" ] || fail "$img: -r leaks changed it"
    # -r all.
    cp "$img" "$img.json"
    expect_rc 0 "$Q" check -r all "$img"
    grep -q "^    1 corruptions$" out || fail "$img -r all: $(cat out)"
    grep -q "^Double checking the fixed image now...$" out || fail "$(cat out)"
    grep -q "^No errors were found on the image.$" out || fail "$(cat out)"
    grep -q "^Repairing: " err || fail "$img -r all stderr: $(cat err)"
    expect_rc 0 "$Q" check "$img"
    expect_rc 0 "$Q" check -r all --output=json "$img.json"
    json_order
    [ "$(json corruptions corruptions-fixed | tr '\n' ' ')" == "- 1 " ] ||
        fail "$img -r all JSON: $(cat out)"
    raw_of "$img" "$img.raw"
}

# An L1 entry (L2 table) outside the file.
mk l1out.qcow
qc set-l1 l1out.qcow 0 $((1 << 40))
corrupt l1out.qcow "L2 table at offset 1099511627776 .*outside the file"

# A misaligned L2 entry: the data it was at leaks, and -r all gives it back.
mk misaligned.qcow
e=$(qc get-l2 misaligned.qcow 4096)
qc set-l2 misaligned.qcow 4096 $((e + 1))
corrupt misaligned.qcow "not aligned"
"$Q" io -c 'read -P 1 0 4k' -c 'read -P 0 4k 4k' -c 'read -P 1 8k 8k' misaligned.qcow >/dev/null ||
    fail "data after clearing the misaligned entry"

# An L2 table that overlaps the L1 table (a 1 GiB image: a 4 KiB L1 table).
mk overlap.qcow 1G
qc set-l1 overlap.qcow 1 512
corrupt overlap.qcow "L2 table at offset 512 .*overlaps"
raw_of clean.qcow clean.raw
cmp <(head -c 1M overlap.qcow.raw) clean.raw || fail "overlap repair lost data"

# Two L2 entries pointing at one cluster.
mk dup.qcow
qc set-l2 dup.qcow 4096 "$(qc get-l2 dup.qcow 0)"
corrupt dup.qcow "also used by another entry"
"$Q" io -c 'read -P 1 0 4k' -c 'read -P 0 4k 4k' -c 'read -P 1 8k 8k' dup.qcow >/dev/null ||
    fail "data after clearing the duplicate entry"

# A compressed entry whose size runs past the end of the file.
mk zpast.qcow
end=$(stat -c %s zpast.qcow)
qc set-l2 zpast.qcow 64k "$(qc compressed zpast.qcow $((end - 60)) 4095)"
corrupt zpast.qcow "compressed cluster .*outside the file"
"$Q" io -c 'read -P 0 64k 4k' -c 'read -P 2 68k 12k' zpast.qcow >/dev/null ||
    fail "data after clearing the compressed entry"

# A compressed stream of garbage.
mk garbage.qcow
read -r off len < <(qc split garbage.qcow "$(qc get-l2 garbage.qcow 68k)")
qc poke garbage.qcow "$off" "$len" 0xff
corrupt garbage.qcow "compressed cluster .*does not inflate"
"$Q" io -c 'read -P 2 64k 4k' -c 'read -P 0 68k 4k' -c 'read -P 2 72k 8k' garbage.qcow >/dev/null ||
    fail "data after clearing the garbage entry"

# A data cluster claimed by an L2 table: -r leaks must not give back the
# clusters of the table it cannot walk (they hold guest data).
"$Q" create -q -f qcow claim.qcow 4M
"$Q" io -c 'write -P 1 0 4k' -c 'write -P 7 2M 4k' claim.qcow >/dev/null
qc set-l2 claim.qcow 4096 "$(qc get-l1 claim.qcow 1)"
sum=$(sha256sum <claim.qcow)
expect_rc 2 "$Q" check -r leaks claim.qcow
[ "$(sha256sum <claim.qcow)" == "$sum" ] || fail "-r leaks changed claim.qcow"
"$Q" io -c 'read -P 7 2M 4k' claim.qcow >/dev/null || fail "guest data lost"

# ---------------------------------------------------------------- errors

truncate -s 1M plain.raw
expect_rc 63 "$Q" check plain.raw
expect_err "^qcowkit: This image format does not support checks$"
expect_rc 63 "$Q" check -f raw empty.qcow
expect_err "^qcowkit: This image format does not support checks$"
expect_rc 63 "$Q" check -r all plain.raw
if have qemu-img; then
    rc=0
    qemu-img check plain.raw 2>/dev/null || rc=$?
    [ "$rc" == 63 ] || fail "qemu-img check of raw exits $rc, not 63"
fi

expect_rc 1 "$Q" check missing.qcow
expect_err "^qcowkit: missing.qcow: No such file or directory$"
expect_rc 1 "$Q" check -r foo empty.qcow
expect_err "^qcowkit: Unknown option value for -r \(expecting 'leaks' or 'all'\): foo$"
expect_rc 1 "$Q" check --output=xml empty.qcow
expect_err "^qcowkit: --output must be used with human or json as argument.$"
expect_rc 1 "$Q" check
expect_err "Expecting one image file name"
expect_rc 1 "$Q" check empty.qcow empty.qcow
expect_err "Expecting one image file name"
expect_rc 1 "$Q" check -f vhd empty.qcow
expect_err "^qcowkit: Unknown file format 'vhd'$"
expect_rc 1 "$Q" check -U -r leaks empty.qcow
expect_err "^qcowkit: Could not open 'empty.qcow': force-share=on can only be used with read-only images$"
expect_rc 1 "$Q" check -T bogus empty.qcow
expect_err "^qcowkit: Invalid source cache option: bogus$"
expect_rc 1 "$Q" check --image-opts -f qcow driver=qcow,file.filename=empty.qcow
expect_err "^qcowkit: --image-opts and --format are mutually exclusive$"
expect_rc 3 "$Q" check --output=json --image-opts driver=qcow,file.filename=leak2.qcow.orig
[ "$(json filename leaks | tr '\n' ' ')" == "driver=qcow,file.filename=leak2.qcow.orig 2 " ] ||
    fail "--image-opts JSON: $(cat out)"
expect_rc 1 "$Q" check -r
expect_err "missing argument for option '-r'"
printf 'QFI\373garbage-header-that-is-not-valid-at-all-00000000000' >bad.qcow
expect_rc 1 "$Q" check bad.qcow
expect_err "^qcowkit: bad.qcow: "
expect_rc 0 "$Q" check -h
grep -q "^usage: qcowkit check " out || fail "check -h"
expect_rc 0 "$Q" help check

# --- Repairs never lose what an unblamed chain reads (issue 8, bug 2).
# shared_table CASE: a 4 KiB-cluster image with data in two L2 spans,
# corrupted by CASE, repaired with -r all and then -r leaks.
mkshared() {
    rm -f sh.qcow
    "$Q" create -q -f qcow -o cluster_size=4096 sh.qcow 64M
    # One L2 table of 512 entries covers 2 MiB of guest space.
    "$Q" io -c 'write -q -P 0x11 0 8k' -c 'write -q -P 0x22 2M 8k' \
        -c 'write -q -P 0x33 4M 4k' sh.qcow >/dev/null
}
# repair_keeps IO-ARGS...: -r all, then -r leaks, leave a clean image
# that still reads as the io arguments say.
repair_keeps() {
    expect_rc 0 "$Q" check -r all sh.qcow
    expect_rc 0 "$Q" check -r leaks sh.qcow
    expect_rc 0 "$Q" check sh.qcow
    expect_rc 0 "$Q" io "$@" sh.qcow
}
# (a) L1[1] := L1[0]: guest 0 keeps reading 0x11 after both repairs.
mkshared
qc set-l1 sh.qcow 1 "$(qc get-l1 sh.qcow 0)"
expect_rc 0 "$Q" io -c 'read -q -P 0x11 0 8k' sh.qcow
expect_rc 2 "$Q" check sh.qcow
grep -q "L2 table at offset .* (L1 entry 1) overlaps another L2 table" err ||
    fail "aliased table not blamed on L1 entry 1: $(cat err)"
repair_keeps -c 'read -q -P 0x11 0 8k' -c 'read -q -P 0 2M 8k' \
    -c 'read -q -P 0x33 4M 4k'
# (b) An L1 entry pointing at the L1 table itself: only that entry goes.
mkshared
qc set-l1 sh.qcow 1 "$(python3 -S -c 'import qc; print(qc.header("sh.qcow")["l1"])')"
repair_keeps -c 'read -q -P 0x11 0 8k' -c 'read -q -P 0 2M 8k' \
    -c 'read -q -P 0x33 4M 4k'
# (c) Two L2 entries share a cluster: the first keeps it, the second is
# detached, and -r leaks does not free the shared cluster.
mkshared
qc set-l2 sh.qcow 2M "$(qc get-l2 sh.qcow 0)"
expect_rc 0 "$Q" check -r all sh.qcow
grep -q "guest offset 2097152) is also used by another entry" err ||
    fail "the later claimant was not blamed: $(cat err)"
expect_rc 0 "$Q" check -r leaks sh.qcow
expect_rc 0 "$Q" io -c 'read -q -P 0x11 0 8k' -c 'read -q -P 0 2M 4k' \
    -c 'read -q -P 0x22 2052k 4k' -c 'read -q -P 0x33 4M 4k' sh.qcow
# (d) A data entry pointing into another L2 table: the entry is blamed,
# and a write through it is refused before repair.
mkshared
qc set-l2 sh.qcow 2M "$(qc get-l1 sh.qcow 0)"
expect_rc 1 "$Q" io -c 'write -q -P 0x44 2M 4k' sh.qcow
grep -q "write failed: Input/output error" out || fail "write through a table: $(cat out)"
expect_rc 0 "$Q" io -c 'read -q -P 0x11 0 8k' sh.qcow
expect_rc 2 "$Q" check sh.qcow
grep -q "(guest offset 2097152) overlaps an L2 table" err ||
    fail "entry over a table not blamed: $(cat err)"
expect_rc 0 "$Q" check -r all sh.qcow
expect_rc 0 "$Q" io -c 'read -q -P 0x11 0 8k' -c 'read -q -P 0 2M 4k' \
    -c 'read -q -P 0x22 2052k 4k' sh.qcow

# --- An entry that is not cluster-aligned or runs past the end of the
# file is untrusted, and new clusters never land in it (bug 4).
rm -f u.qcow
"$Q" create -q -f qcow -o cluster_size=4096 u.qcow 1M
"$Q" io -c 'write -q -P 0x55 0 4k' u.qcow >/dev/null
qc set-l2 u.qcow 8k 0x3200
expect_rc 2 "$Q" check u.qcow
grep -q "cluster at offset 12800 (guest offset 8192) is not aligned to the cluster size" err ||
    fail "unaligned entry not reported: $(cat err)"
expect_rc 1 "$Q" io -c 'read -q 8k 4k' u.qcow
grep -q "read failed: Input/output error" out || fail "unaligned read: $(cat out)"
# Past the end of the file but aligned: refused even once the file grows.
qc set-l2 u.qcow 8k 0x5000
expect_rc 1 "$Q" io -c 'write -q -P 0x66 4k 4k' -c 'write -q -P 0x77 12k 4k' \
    -c 'read -q 8k 4k' u.qcow
grep -q "read failed: Input/output error" out ||
    fail "an entry past the end became trusted once the file grew: $(cat out)"
expect_rc 0 "$Q" io -c 'read -q -P 0x55 0 4k' -c 'read -q -P 0x66 4k 4k' \
    -c 'read -q -P 0x77 12k 4k' u.qcow
expect_rc 2 "$Q" check u.qcow
expect_rc 0 "$Q" check -r all u.qcow
expect_rc 0 "$Q" io -c 'read -q -P 0x55 0 4k' -c 'read -q -P 0x66 4k 4k' \
    -c 'read -q -P 0 8k 4k' -c 'read -q -P 0x77 12k 4k' u.qcow

echo ok
