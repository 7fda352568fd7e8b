#!/bin/bash
# qcowkit commit against qemu-img commit on the same chains (raw and qcow
# backing files): afterwards the backing files and the overlays must hold
# the same data.  qemu-img's commit job copies with parallel requests, so a
# qcow backing file's new clusters land in an order that differs from run
# to run: byte equality (cmp) is checked where no cluster is allocated,
# data equality (qemu-img compare) everywhere.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir
have qemu-img && have qemu-io || { echo "qemu-img/qemu-io missing" >&2; exit 77; }

# make_chain DIR BASE_FMT [WRITES...]: DIR/base.BASE_FMT and DIR/top.qcow,
# made by qemu-img (both tools then start from identical files).
make_chain() {
    local dir=$1 bfmt=$2
    shift 2
    mkdir -p "$dir"
    qemu-img create -q -f "$bfmt" "$dir/base.$bfmt" 4M
    qemu-io -f "$bfmt" -c 'write -P 1 0 1M' -c 'write -P 7 2M 512k' \
        "$dir/base.$bfmt" >/dev/null
    qemu-img create -q -f qcow -b "base.$bfmt" -F "$bfmt" "$dir/top.qcow"
    local w
    for w in "$@"; do
        qemu-io -f qcow -c "$w" "$dir/top.qcow" >/dev/null
    done
}

# run_both BASE_FMT WRITES...: the same chain committed by each tool.
run_both() {
    local bfmt=$1
    shift
    rm -rf k q
    make_chain k "$bfmt" "$@"
    make_chain q "$bfmt" "$@"
    qemu-img convert -O raw k/top.qcow want.raw
    expect_rc 0 "$Q" commit k/top.qcow
    expect_out "Image committed."
    qemu-img commit -q q/top.qcow || fail "qemu-img commit"
    # The base now holds what the overlay showed; the emptied overlay too.
    qemu-img compare -q -f "$bfmt" -F raw "k/base.$bfmt" want.raw ||
        fail "base after commit does not read as the overlay did"
    qemu-img compare -q -f "$bfmt" -F "$bfmt" "k/base.$bfmt" "q/base.$bfmt" ||
        fail "bases differ after commit ($bfmt)"
    qemu-img compare -q k/top.qcow q/top.qcow || fail "overlays differ ($bfmt)"
    qemu-img compare -q k/top.qcow want.raw || fail "overlay changed ($bfmt)"
    expect_rc 0 "$Q" map --output=json k/top.qcow
    ! grep -q '"depth": 0, "present": true' out || fail "overlay not emptied"
}

# Raw backing file: byte-identical results.
run_both raw 'write -P 2 512k 1M' 'write -P 3 3M 4k' 'write -P 0 2M 4k' \
    'write -P 9 4095k 1k'
cmp k/base.raw q/base.raw || fail "raw bases are not byte-identical"

# qcow backing file, the overlay writing only where the base has clusters:
# every write lands in place, so the files are byte-identical.
run_both qcow 'write -P 2 512k 64k' 'write -P 3 2100k 1000' \
    'write -P 4 1023k 1k'
cmp k/base.qcow q/base.qcow || fail "qcow bases are not byte-identical"

# qcow backing file gaining clusters: the same data (compared above) and a
# clean image.
run_both qcow 'write -P 2 512k 1M' 'write -P 3 3M 4k' 'write -P 5 4000k 96k'
expect_rc 0 "$Q" check k/base.qcow
qemu-img check -q k/base.qcow 2>/dev/null || true

# -d keeps the overlay's clusters; -b names the direct backing file here
# (and implies -d, as in qemu-img).
for opt in -d "-b base.qcow" "-b $T/k/base.qcow"; do
    rm -rf k
    make_chain k qcow 'write -P 2 512k 64k'
    # shellcheck disable=SC2086
    expect_rc 0 "$Q" commit $opt k/top.qcow
    expect_out "Image committed."
    expect_rc 0 "$Q" map --output=json k/top.qcow
    grep -q '"depth": 0, "present": true' out || fail "$opt emptied the overlay"
    qemu-io -f qcow -c 'read -P 2 512k 64k' k/base.qcow | grep -q '^read' ||
        fail "$opt: data not committed"
done

# Quiet, progress, rate limit (accepted, ignored with a note), cache modes.
rm -rf k
make_chain k qcow 'write -P 2 512k 64k'
expect_rc 0 "$Q" commit -q -t none k/top.qcow
expect_out ""
make_chain k qcow 'write -P 2 512k 64k'
expect_rc 0 "$Q" commit -r 1M -p k/top.qcow
grep -q "Image committed." out || fail "commit -r -p"
grep -q "100.00/100%" out || fail "commit -p shows no progress"
expect_err "note: -r 1M is accepted and ignored"
expect_rc 1 "$Q" commit -t bogus k/top.qcow
expect_err "^qcowkit: Invalid cache option: bogus$"

# A larger overlay grows its backing file (QEMU 7.2 cannot for qcow).
rm -rf k
make_chain k raw
"$Q" resize -q k/top.qcow 6M
qemu-io -f qcow -c 'write -P 8 5M 64k' k/top.qcow >/dev/null
expect_rc 0 "$Q" commit -q k/top.qcow
[ "$(stat -c %s k/base.raw)" -eq 6291456 ] || fail "base did not grow"
qemu-io -f raw -c 'read -P 8 5M 64k' k/base.raw | grep -q '^read' ||
    fail "grown part not committed"

# Refusals, with qemu-img's messages.
"$Q" create -q -f qcow lone.qcow 1M
expect_rc 1 "$Q" commit lone.qcow
expect_err "^qcowkit: Image does not have a backing file$"
rm -rf k
make_chain k qcow
expect_rc 1 "$Q" commit -b nothere k/top.qcow
expect_err "^qcowkit: Did not find 'nothere' in the backing chain of 'k/top.qcow'$"
# As in QEMU, a relative -b is relative to the overlay, not to the caller.
expect_rc 1 "$Q" commit -b k/base.qcow k/top.qcow
expect_err "Did not find 'k/base.qcow'"
expect_rc 1 "$Q" commit
expect_err "Expecting one image file name"

# -b deeper than the direct backing file: as qemu-img, the whole chain
# above BASE is copied into it; the images above keep their bytes.  Each
# chain is made twice by qemu-img, committed by each tool, and BASE must
# read as the overlay did, and as qemu-img's BASE.
# deep_chain DIR BASE_FMT MID_SIZE: DIR/base, mid1, mid2 (of MID_SIZE) and
# top; mid1 and mid2 overlap each other and base.  (qemu-io without a
# cache mode syncs every write: seconds per call on a loaded machine.)
deep_chain() {
    local d=$1 bfmt=$2 msize=$3
    mkdir -p "$d"
    qemu-img create -q -f "$bfmt" "$d/base.$bfmt" 4M
    qemu-io -t unsafe -f "$bfmt" -c 'write -P 1 0 4M' "$d/base.$bfmt" >/dev/null
    qemu-img create -q -f qcow -b "base.$bfmt" -F "$bfmt" "$d/mid1.qcow"
    qemu-io -t unsafe -f qcow -c 'write -P 2 512k 1M' -c 'write -z 3M 64k' \
        "$d/mid1.qcow" >/dev/null
    qemu-img create -q -f qcow -b mid1.qcow -F qcow "$d/mid2.qcow" "$msize"
    qemu-io -t unsafe -f qcow -c 'write -P 3 1M 4k' -c 'write -P 4 1100k 300k' \
        "$d/mid2.qcow" >/dev/null
    qemu-img create -q -f qcow -b mid2.qcow -F qcow "$d/top.qcow" 4M
    qemu-io -t unsafe -f qcow -c 'write -P 5 1090k 20k' -c 'write -P 6 3900k 8k' \
        "$d/top.qcow" >/dev/null
}
# Cases: BASE_FMT MID2_SIZE -b (ABS: base by its absolute path).
for c in "qcow 4M base.qcow" "qcow 2M base.qcow" "raw 4M ABS" \
    "raw 2M base.raw" "qcow 4M mid1.qcow"; do
    read -r bfmt msize b <<<"$c"
    rm -rf k q
    deep_chain k "$bfmt" "$msize"
    cp -r k q
    bname=$b
    [ "$b" = ABS ] && bname=$T/k/base.$bfmt
    target=${b/ABS/base.$bfmt}
    qemu-img convert -O raw k/top.qcow want.raw
    md5sum k/top.qcow k/mid2.qcow >k.md5
    expect_rc 0 "$Q" commit -b "$bname" k/top.qcow
    expect_out "Image committed."
    qemu-img commit -q -b "${bname/\/k\//\/q\/}" q/top.qcow ||
        fail "qemu-img commit -b $b"
    what="-b $b ($bfmt base, mid2 of $msize)"
    qemu-img compare -q -f raw -F "${target##*.}" want.raw "k/$target" ||
        fail "$what: BASE does not read as the overlay did"
    qemu-img compare -q "q/$target" "k/$target" ||
        fail "$what: BASE differs from qemu-img's"
    md5sum --quiet -c k.md5 || fail "$what changed the images above"
    qemu-img compare -q want.raw k/top.qcow || fail "$what: top reads otherwise"
    if [ "$target" = mid1.qcow ]; then
        cmp -s "k/base.$bfmt" "q/base.$bfmt" || fail "$what: the image below BASE changed"
    fi
    if [ "${target##*.}" = qcow ]; then
        expect_rc 0 "$Q" check "k/$target"
    fi
done
expect_rc 0 "$Q" commit -p -b base.qcow k/top.qcow
grep -q "(100.00/100%)" out || fail "deep commit -p does not reach 100%"

# Committing a qcow header into a probed raw backing file is refused: it
# would turn the raw file into a qcow image (CVE-2008-2004).
mkdir -p pr
head -c 1M /dev/zero | tr '\0' 'z' >pr/base.raw
cp pr/base.raw pr.orig
"$Q" create -q -f qcow -b base.raw -F raw pr/top.qcow
printf 'QFI\xfb\0\0\0\1' >pr/hdr
"$Q" io -c 'write -s pr/hdr 0 8' pr/top.qcow >/dev/null
expect_rc 1 "$Q" commit pr/top.qcow
expect_err "^qcowkit: .*pr/base.raw: .*probed raw image"
cmp -n 512 pr/base.raw pr.orig || fail "commit wrote a qcow header into a probed raw file"
[ "$("$Q" info pr/base.raw | sed -n 2p)" == "file format: raw" ] ||
    fail "the raw backing file probes as another format"
echo ok
