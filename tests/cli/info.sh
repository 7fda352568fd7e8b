#!/bin/bash
# qcowkit info: human and JSON output, backing chains, errors.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir

"$Q" create -q -f qcow base.qcow 1M
mkdir sub
"$Q" create -q -f qcow sub/base.qcow 2M
"$Q" create -q -f qcow -b base.qcow -F qcow sub/top.qcow

expect_rc 0 "$Q" info base.qcow
grep -q "^image: base.qcow$" out || fail "image line"
grep -q "^file format: qcow$" out || fail "format line"
grep -q "^virtual size: 1 MiB (1048576 bytes)$" out || fail "size line"
grep -q "^cluster_size: 4096$" out || fail "cluster line"

expect_rc 0 "$Q" info sub/top.qcow
grep -q "^backing file: base.qcow (actual path: sub/base.qcow)$" out ||
    fail "actual path"

expect_rc 0 "$Q" info --output=json sub/top.qcow
keys=$(grep -o '"[a-z-]*":' out | tr -d '":' | tr '\n' ' ')
[ "$keys" == "virtual-size filename cluster-size format actual-size full-backing-filename backing-filename dirty-flag " ] ||
    fail "JSON keys: $keys"
grep -q '"full-backing-filename": "sub/base.qcow"' out || fail "full name"

expect_rc 0 "$Q" info --backing-chain --output=json sub/top.qcow
[ "$(head -c1 out)" == "[" ] || fail "chain JSON is not a list"
grep -c '"filename"' out | grep -qx 2 || fail "chain has two images"
expect_rc 0 "$Q" info --backing-chain sub/top.qcow
grep -q "^image: sub/base.qcow$" out || fail "human chain"

# A raw image; -f raw on a qcow file shows it as raw.
truncate -s 1000 odd.raw
expect_rc 0 "$Q" info odd.raw
grep -q "^virtual size: 1 KiB (1024 bytes)$" out || fail "raw rounds to sectors"
expect_rc 0 "$Q" info -f raw base.qcow
grep -q "^file format: raw$" out || fail "-f raw"

# A missing backing file does not stop plain info, but does a chain.
"$Q" create -q -u -f qcow -b gone.qcow -F qcow orphan.qcow 1M
expect_rc 0 "$Q" info orphan.qcow
expect_rc 1 "$Q" info --backing-chain orphan.qcow
expect_err "^qcowkit: .*gone.qcow"

expect_rc 1 "$Q" info missing.qcow
expect_err "^qcowkit: missing.qcow: No such file or directory$"
expect_rc 1 "$Q" info -f vhd base.qcow
expect_err "^qcowkit: Unknown file format 'vhd'$"
expect_rc 1 "$Q" info --output=xml base.qcow
expect_err "--output must be used with human or json"
expect_rc 1 "$Q" info
expect_err "Expecting one image file name"
printf 'QFI\373garbage-header-that-is-not-valid-at-all-00000000000' >bad.qcow
expect_rc 1 "$Q" info bad.qcow
expect_err "^qcowkit: bad.qcow: "

if have qemu-img; then
    qemu-img create -q -f qcow q.qcow 3M
    qemu-img create -q -f qcow -b q.qcow -F qcow qtop.qcow
    for f in q.qcow qtop.qcow sub/top.qcow odd.raw orphan.qcow; do
        for o in human json; do
            diff <(qemu-img info --output=$o "$f") <("$Q" info --output=$o "$f") ||
                fail "info $o $f differs from qemu-img"
        done
    done
    diff <(qemu-img info --backing-chain --output=json qtop.qcow) \
        <("$Q" info --backing-chain --output=json qtop.qcow) ||
        fail "chain differs from qemu-img"
fi
echo ok
