#!/bin/bash
# qcowkit measure: qemu-img's output for raw; for qcow (which QEMU 7.2
# cannot measure) "required" is what `qcowkit convert -O qcow` writes:
# never less, and at most one cluster per L2 table more.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir
have qemu-img && have qemu-io || { echo "qemu-img/qemu-io missing" >&2; exit 77; }

qemu-img create -q -f qcow base.qcow 4M
qemu-io -f qcow -c 'write -P 1 0 1M' -c 'write -P 2 3M 4k' base.qcow >/dev/null
qemu-img create -q -f qcow -b base.qcow -F qcow top.qcow
qemu-io -f qcow -c 'write -P 3 1536k 1000' -c 'write -P 4 4095k 1k' top.qcow >/dev/null
qemu-img create -q -f raw holes.raw 5000000
qemu-io -f raw -c 'write -P 5 0 64k' -c 'write -P 6 2M 300k' holes.raw >/dev/null
qemu-img create -q -f qcow empty.qcow 10M
qemu-img create -q -f qcow big.qcow 3G
qemu-io -f qcow -c 'write -P 7 0 4k' -c 'write -P 7 2G 4k' -c 'write -P 7 3071M 64k' \
    big.qcow >/dev/null

# field NAME: the number after "NAME size: " in out.
field() { sed -n "s/^$1 size: //p" out; }

for src in base.qcow top.qcow holes.raw empty.qcow big.qcow; do
    for cs in "" 512 65536; do
        opts=()
        [ -n "$cs" ] && opts=(-o "cluster_size=$cs")
        expect_rc 0 "$Q" measure -O qcow "${opts[@]}" "$src"
        req=$(field required)
        full=$(field "fully allocated")
        expect_rc 0 "$Q" convert -O qcow "${opts[@]}" "$src" out.qcow
        actual=$(stat -c %s out.qcow)
        expect_rc 0 "$Q" info out.qcow
        cluster=$(sed -n 's/^cluster_size: //p' out)
        [ "$req" -ge "$actual" ] ||
            fail "$src ${cs:-default}: required $req < actual $actual"
        [ "$full" -ge "$req" ] || fail "$src: fully allocated $full < required $req"
        # Slack: clusters convert found to hold zeros only (none here), so
        # at most a cluster per L2 table (32 KiB tables for 512-byte ones).
        slack=$((req - actual))
        [ "$slack" -le $((cluster * 64)) ] ||
            fail "$src ${cs:-default}: required $req is not tight (actual $actual)"
    done
done
# These sources hold no zero-only data clusters: exact.
for src in base.qcow top.qcow holes.raw empty.qcow; do
    expect_rc 0 "$Q" measure -O qcow "$src"
    req=$(field required)
    "$Q" convert -O qcow "$src" out.qcow
    [ "$req" -eq "$(stat -c %s out.qcow)" ] || fail "$src: required $req is not exact"
done
# Fully allocated: an image written everywhere.
qemu-img create -q -f raw full.raw 3000000
qemu-io -f raw -c 'write -P 9 0 3000000' full.raw >/dev/null
expect_rc 0 "$Q" measure -O qcow full.raw
full=$(field "fully allocated")
req=$(field required)
"$Q" convert -O qcow full.raw out.qcow
[ "$full" -eq "$(stat -c %s out.qcow)" ] || fail "fully allocated $full"
[ "$req" -eq "$full" ] || fail "required of a full image"

# --size: the empty image qcowkit create makes.
expect_rc 0 "$Q" measure -O qcow --size 10M
expect_out "required size: 560
fully allocated size: 10510336"
"$Q" create -q -f qcow sized.qcow 10M
[ "$(stat -c %s sized.qcow)" -eq 560 ] || fail "--size required"
expect_rc 0 "$Q" measure -O qcow --output=json --size 1G
expect_out '{
    "required": 4144,
    "fully-allocated": 1075847168
}'

# raw: exactly qemu-img's output, both forms.
for args in "--size 1000" "--size 1G" "-O raw --size 5M" "holes.raw" "top.qcow" \
    "--output=json base.qcow" "-f qcow --output=human top.qcow" "-O raw -o size=1M --size 2M"; do
    # shellcheck disable=SC2086
    expect_rc 0 "$Q" measure $args
    # shellcheck disable=SC2086
    [ "$(cat out)" == "$(qemu-img measure $args)" ] || fail "measure $args: $(cat out)"
done

# Errors, as qemu-img.
for args in "" "--size 1M top.qcow" "-f qcow" "-O foo --size 1M" \
    "--output=xml --size 1M" "a b" "-O raw -o foo=1 --size 1M"; do
    # shellcheck disable=SC2086
    expect_rc 1 "$Q" measure $args
    # shellcheck disable=SC2086
    qemu-img measure $args 2>q.err >/dev/null && fail "qemu-img measure $args"
    diff <(sed 's/^qcowkit: //' err) <(sed 's/^qemu-img: //' q.err) ||
        fail "measure $args: messages differ"
done
echo ok
