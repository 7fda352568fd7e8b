#!/bin/bash
# qcowkit compare: messages and exit codes 0 (same), 1 (differ), 2 (error).
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir

"$Q" create -q -f qcow a.qcow 1M
"$Q" create -q -f qcow b.qcow 1M
"$Q" create -q -f qcow big.qcow 2M

expect_rc 0 "$Q" compare a.qcow b.qcow
expect_out "Images are identical."

"$Q" io -c 'write -P 1 0 4k' a.qcow >/dev/null
"$Q" io -c 'write -P 1 0 4k' -c 'write -P 2 1000 10' b.qcow >/dev/null
expect_rc 1 "$Q" compare a.qcow b.qcow
expect_out "Content mismatch at offset 512!"
expect_rc 1 "$Q" compare -q a.qcow b.qcow
expect_out ""

# Different sizes: the extra part must read as zeros, unless -s.
"$Q" create -q -f qcow c.qcow 1M
"$Q" io -c 'write -P 1 0 4k' c.qcow >/dev/null
"$Q" create -q -f qcow d.qcow 2M
"$Q" io -c 'write -P 1 0 4k' d.qcow >/dev/null
expect_rc 0 "$Q" compare c.qcow d.qcow
expect_out "Warning: Image size mismatch!
Images are identical."
expect_rc 1 "$Q" compare -s c.qcow d.qcow
expect_out "Strict mode: Image size mismatch!"
"$Q" io -c 'write -P 5 1536k 512' d.qcow >/dev/null
expect_rc 1 "$Q" compare c.qcow d.qcow
expect_out "Warning: Image size mismatch!
Content mismatch at offset 1572864!"

# Allocated zeros equal unallocated space, except in strict mode.
"$Q" create -q -f qcow z.qcow 1M
"$Q" create -q -f qcow e.qcow 1M
"$Q" io -c 'write -P 0 0 4k' z.qcow >/dev/null
expect_rc 0 "$Q" compare z.qcow e.qcow
expect_rc 1 "$Q" compare -s z.qcow e.qcow
expect_out "Strict mode: Offset 0 block status mismatch!"

# qcow against its raw copy; -f / -F name the formats.
"$Q" convert -O raw a.qcow a.raw
expect_rc 0 "$Q" compare a.qcow a.raw
expect_rc 0 "$Q" compare -f qcow -F raw a.qcow a.raw
expect_rc 1 "$Q" compare -f raw -F raw a.qcow a.raw

# Through a backing chain.
"$Q" create -q -f qcow -b a.qcow -F qcow top.qcow
expect_rc 0 "$Q" compare top.qcow a.qcow
"$Q" io -c 'write -P 7 8k 1' top.qcow >/dev/null
expect_rc 1 "$Q" compare top.qcow a.qcow
expect_out "Content mismatch at offset 8192!"

# Errors: exit 2 when an image cannot be opened; 1 for usage.
expect_rc 2 "$Q" compare a.qcow missing.qcow
expect_err "^qcowkit: missing.qcow: No such file or directory$"
expect_rc 2 "$Q" compare -f vmdk a.qcow b.qcow
expect_err "^qcowkit: Unknown file format 'vmdk'$"
expect_rc 1 "$Q" compare a.qcow
expect_err "Expecting two image file names"

expect_rc 0 "$Q" compare -p a.qcow a.qcow
grep -q "(100.00/100%)" out || fail "progress"
echo ok
