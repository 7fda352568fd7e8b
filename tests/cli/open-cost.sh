#!/usr/bin/env bash
# Opening costs the same whatever the virtual size (issue 9, item 1):
# the L1 table is paged in as it is used, never read whole.
#  - a sparse file whose header declares a 1 GiB L1 table (virtual size
#    2^56, 64 KiB clusters): info, a 64 KiB read and a map of 1 GiB each
#    <= 64 MiB resident and <= 1 s;
#  - an honest 16 TiB image (a 64 MiB L1 table): info and a 64 KiB read
#    at 8 TiB each <= 16 MiB resident and <= 0.2 s (asserted with a
#    margin: 0.5 s);
#  - every command below stays within the cache (32 MiB) plus 8 MiB.
# Each command runs under an address-space limit (prlimit --as) and its
# peak resident memory and wall time come from /usr/bin/time.  Under a
# sanitizer the memory limits are skipped (its shadow memory is huge) and
# the time limits are ten times longer.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
requires prlimit truncate
[ -x /usr/bin/time ] || skip "/usr/bin/time is missing"
enter_tmpdir

sanitized=0
if grep -qa -e __asan_init -e __tsan_init "$Q"; then
    sanitized=1
    note "sanitizer build: memory limits skipped, time limits x10"
fi

# bounded MAX_KIB MAX_SECONDS CMD...: run CMD within the limits.
bounded() {
    local max_kib=$1 max_s=$2 as_limit secs kib
    shift 2
    as_limit=$(((max_kib + 64 * 1024) * 1024))
    if [ "$sanitized" = 1 ]; then
        max_s=$(awk -v s="$max_s" 'BEGIN { print s * 10 }')
        /usr/bin/time -f '%e %M' -o cost.txt "$@" >out.txt 2>err.txt ||
            fail "$* failed: $(cat err.txt)"
    else
        /usr/bin/time -f '%e %M' -o cost.txt prlimit --as="$as_limit" \
            "$@" >out.txt 2>err.txt || fail "$* failed: $(cat err.txt)"
    fi
    read -r secs kib <cost.txt
    note "$secs s, $((kib / 1024)) MiB resident: ${*#"$Q" }"
    if [ "$sanitized" = 0 ] && [ "$kib" -gt "$max_kib" ]; then
        fail "$* used $kib KiB, more than $max_kib KiB"
    fi
    awk -v s="$secs" -v m="$max_s" 'BEGIN { exit !(s <= m) }' ||
        fail "$* took $secs s, more than $max_s s"
}

# The hostile header: 48 bytes, then a hole up to the end of the table.
printf 'QFI\373\0\0\0\1\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0' >hostile.qcow
printf '\1\0\0\0\0\0\0\0\20\15\0\0\0\0\0\0\0\0\0\0\0\0\20\0' >>hostile.qcow
truncate -s $((4096 + (1 << 30))) hostile.qcow
"$Q" info hostile.qcow | grep -q "virtual size: 64 PiB" ||
    fail "the hostile image does not open as 64 PiB"

bounded $((64 * 1024)) 1 "$Q" info hostile.qcow
bounded $((64 * 1024)) 1 "$Q" io -c 'read -P 0 0 64k' hostile.qcow
bounded $((64 * 1024)) 1 "$Q" map --max-length=1G hostile.qcow
# Whole-image walks: time follows the tables, not the 2^56 bytes declared.
bounded $((64 * 1024)) 2 "$Q" map hostile.qcow
bounded $((64 * 1024)) 2 "$Q" map --output=json hostile.qcow
bounded $((64 * 1024)) 2 "$Q" compare hostile.qcow hostile.qcow
bounded $((64 * 1024)) 2 "$Q" measure -O qcow hostile.qcow
bounded $((64 * 1024)) 2 "$Q" check hostile.qcow
# Creating an image as large: its 1 GiB L1 table of zeros is not written.
bounded $((64 * 1024)) 2 "$Q" create -q -f qcow -o cluster_size=65536 \
    huge.qcow 64P
[ "$(stat -c %s huge.qcow)" -eq $((48 + (1 << 30))) ] ||
    fail "huge.qcow is $(stat -c %s huge.qcow) bytes"
[ "$(stat -c %b huge.qcow)" -lt 1024 ] ||
    fail "huge.qcow stores $(stat -c %b huge.qcow) blocks of zeros"
bounded $((64 * 1024)) 2 "$Q" check huge.qcow

# An honest 16 TiB image with data at 8 TiB.
"$Q" create -q -f qcow big.qcow 16T
"$Q" io -c 'write -P 0x5a 8T 64k' big.qcow >/dev/null
bounded $((16 * 1024)) 0.5 "$Q" info big.qcow
bounded $((16 * 1024)) 0.5 "$Q" io -c 'read -P 0x5a 8T 64k' big.qcow
grep -q "read 65536/65536 bytes at offset 8796093022208" out.txt ||
    fail "the read at 8 TiB did not happen: $(cat out.txt)"

# Every command: the cache (32 MiB by default) plus 8 MiB.
cap=$(((32 + 8) * 1024))
for img in hostile.qcow big.qcow; do
    bounded $cap 2 "$Q" check "$img"
    bounded $cap 2 "$Q" io -r -c 'read 4T 1M' -c 'map' "$img"
    bounded $cap 2 "$Q" map --start-offset=1T --max-length=8T "$img"
done
bounded $cap 5 "$Q" map --output=json big.qcow
bounded $cap 5 "$Q" measure -O qcow big.qcow
bounded $cap 5 "$Q" compare big.qcow big.qcow
bounded $cap 5 "$Q" io -c 'write -P 7 4T 1M' -c 'read -P 7 4T 1M' big.qcow
bounded $cap 5 "$Q" resize big.qcow 32T
bounded $cap 5 "$Q" io -c 'read -P 0x5a 8T 64k' -c 'read -P 7 4T 1M' \
    -c 'write -P 9 24T 64k' big.qcow
bounded $cap 5 "$Q" check big.qcow
grep -q "No errors were found" out.txt || fail "check after resize: $(cat out.txt)"
bounded $cap 5 "$Q" create -q -f qcow big2.qcow 16T
bounded $cap 5 "$Q" info big2.qcow
note ok
