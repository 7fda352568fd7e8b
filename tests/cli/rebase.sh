#!/bin/bash
# qcowkit rebase (QEMU 7.2 refuses to change a qcow image's backing file):
# a safe rebase keeps what the overlay reads, checked with qemu-img compare
# against a raw snapshot taken before; -u changes only the name.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir
have qemu-img && have qemu-io || { echo "qemu-img/qemu-io missing" >&2; exit 77; }

mkdir d
qemu-img create -q -f qcow d/old.qcow 4M
qemu-io -f qcow -c 'write -P 1 0 2M' -c 'write -P 3 3M 512k' d/old.qcow >/dev/null
qemu-img create -q -f raw d/new.raw 3M
qemu-io -f raw -c 'write -P 1 0 1M' -c 'write -P 5 1536k 64k' d/new.raw >/dev/null
qemu-img create -q -f qcow -b old.qcow -F qcow d/top.qcow
qemu-io -f qcow -c 'write -P 2 512k 4k' -c 'write -P 4 1700k 1000' \
    -c 'write -P 6 3700k 512' d/top.qcow >/dev/null
qemu-img convert -O raw d/top.qcow before.raw

# Onto a raw file (smaller than the overlay), named relative to the overlay.
expect_rc 0 "$Q" rebase -b new.raw -F raw d/top.qcow
expect_out ""
qemu-img compare -q d/top.qcow before.raw || fail "safe rebase changed the data"
expect_rc 0 "$Q" info d/top.qcow
grep -q "^backing file: new.raw" out || fail "backing name not changed"
qemu-img info d/top.qcow | grep -q "^backing file: new.raw" ||
    fail "qemu-img does not see the new backing file"
# Only ranges that differ were copied: the first MiB reads the same in both.
expect_rc 0 "$Q" map --output=json d/top.qcow
grep -q '"start": 0, "length": 524288, "depth": 1' out ||
    fail "unchanged range was copied: $(head -3 out)"
expect_rc 0 "$Q" check d/top.qcow

# Back onto a qcow file, with progress; then onto nothing (-b "").
expect_rc 0 "$Q" rebase -p -b old.qcow -F qcow d/top.qcow
grep -q "100.00/100%" out || fail "rebase -p shows no progress"
qemu-img compare -q d/top.qcow before.raw || fail "second rebase changed the data"
expect_rc 0 "$Q" rebase -q -b "" d/top.qcow
expect_out ""
qemu-img compare -q d/top.qcow before.raw || fail "rebase -b '' changed the data"
qemu-img info d/top.qcow | grep -q "^backing file" && fail "backing file still set"

# -c: the copied clusters are compressed.
qemu-img create -q -f qcow -b old.qcow -F qcow d/c.qcow
expect_rc 0 "$Q" rebase -c -b "" d/c.qcow
qemu-img compare -q -f qcow -F qcow d/c.qcow d/old.qcow || fail "rebase -c data"
[ "$(stat -c %s d/c.qcow)" -lt 1000000 ] || fail "rebase -c did not compress"

# -u: only the name changes, even to a file that does not exist.
qemu-img create -q -f qcow -b old.qcow -F qcow d/u.qcow
qemu-io -f qcow -c 'write -P 2 0 4k' d/u.qcow >/dev/null
expect_rc 0 "$Q" rebase -u -b missing.qcow d/u.qcow
qemu-img info -U d/u.qcow 2>/dev/null | grep -q "^backing file: missing.qcow" ||
    fail "-u did not change the name"
expect_rc 0 "$Q" rebase -u -b old.qcow d/u.qcow
qemu-img info d/u.qcow | grep -q "^backing file: old.qcow" || fail "-u back"
qemu-io -f qcow -c 'read -P 2 0 4k' -c 'read -P 1 4k 1M' d/u.qcow | grep -q Pattern &&
    fail "-u changed data"
expect_rc 0 "$Q" rebase -u d/u.qcow
qemu-img info d/u.qcow | grep -q "^backing file" && fail "-u without -b keeps a backing file"

# Refusals.
expect_rc 1 "$Q" rebase d/top.qcow
expect_err "^qcowkit: Must specify backing file \(-b\) or use unsafe mode \(-u\)$"
expect_rc 1 "$Q" rebase -b old.qcow -F vmdk d/top.qcow
expect_err "^qcowkit: Invalid format name: 'vmdk'$"
expect_rc 1 "$Q" rebase -t bogus -b old.qcow d/top.qcow
expect_err "^qcowkit: Invalid cache option: bogus$"
expect_rc 1 "$Q" rebase -T bogus -b old.qcow d/top.qcow
expect_err "^qcowkit: Invalid source cache option: bogus$"
expect_rc 1 "$Q" rebase -b nothere.qcow d/top.qcow
expect_err "^qcowkit: Could not open new backing file 'nothere.qcow': "
qemu-img compare -q d/top.qcow before.raw || fail "failed rebase changed data"
cp d/old.qcow old.qcow
expect_rc 1 "$Q" rebase -f raw -b old.qcow before.raw
expect_err "^qcowkit: Could not change the backing file to 'old.qcow': "
# Onto itself, under any name: refused, the image unchanged.
cp d/u.qcow self.orig
ln -sf u.qcow d/usym.qcow
ln -f d/u.qcow d/uhard.qcow
for b in u.qcow ./u.qcow "$T/d/u.qcow" usym.qcow uhard.qcow; do
    expect_rc 1 "$Q" rebase -u -b "$b" -F qcow d/u.qcow
    expect_err "^qcowkit: Could not change the backing file to '$b': .*itself"
    cmp d/u.qcow self.orig || fail "rebase -u -b $b changed the image"
    expect_rc 1 "$Q" rebase -b "$b" -F qcow d/u.qcow
    cmp d/u.qcow self.orig || fail "rebase -b $b changed the image"
done
echo ok
