#!/bin/sh
# The shared library exports exactly the symbols of the version script,
# each with its version, and the version script names every function the
# header declares: no internal (qk_) symbol leaks, none is forgotten.
# Every function of a frozen older header (FROZEN.H...) is still listed,
# so that a program built against it links.
# usage: symbols.sh LIBQCOWKIT.SO LIBQCOWKIT.SYM QCOWKIT.H [FROZEN.H...]
set -eu
so=$1 sym=$2 header=$3
shift 3
command -v nm >/dev/null 2>&1 || { echo "SKIP: nm not found"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Names listed in the script (comments and the local: * line aside).
sed -e 's|/\*.*||; s|^ \*.*||' "$sym" |
    grep -E '^[[:space:]]+qcowkit_[a-z0-9_]+;' | tr -d ' ;' | sort >"$tmp/listed"
grep -q '\*' "$tmp/listed" && { echo "FAIL: wildcard in $sym"; exit 1; }
[ -s "$tmp/listed" ] || { echo "FAIL: no symbols in $sym"; exit 1; }

# Defined dynamic symbols, as name@@version; the node itself is type A.
nm -D --defined-only "$so" | awk '$2 != "A" { print $3 }' | sort >"$tmp/raw"
status=0
if grep -v '@@QCOWKIT_0\.1$' "$tmp/raw" >"$tmp/unversioned"; then
    echo "FAIL: exported without the QCOWKIT_0.1 version:"
    cat "$tmp/unversioned"
    status=1
fi
sed 's/@.*//' "$tmp/raw" | sort >"$tmp/exported"
if ! diff -u "$tmp/listed" "$tmp/exported" >"$tmp/diff"; then
    echo "FAIL: exports differ from $sym (- listed only, + exported only):"
    cat "$tmp/diff"
    status=1
fi

# Functions a header declares (prototypes start a line).
declared() {
    grep -E '^[a-z].*[ *]qcowkit_[a-z0-9_]+\(' "$1" | grep -v typedef |
        sed -E 's/.*[ *](qcowkit_[a-z0-9_]+)\(.*/\1/' | sort -u
}
declared "$header" >"$tmp/declared"
if ! diff -u "$tmp/declared" "$tmp/listed" >"$tmp/diff2"; then
    echo "FAIL: header and $sym differ (- declared only, + listed only):"
    cat "$tmp/diff2"
    status=1
fi
for frozen in "$@"; do
    declared "$frozen" >"$tmp/frozen"
    if comm -23 "$tmp/frozen" "$tmp/listed" | grep . >"$tmp/gone"; then
        echo "FAIL: declared in $frozen but not exported:"
        cat "$tmp/gone"
        status=1
    fi
done
[ "$status" -eq 0 ] && echo "symbols: $(wc -l <"$tmp/listed") exported, all listed and declared"
exit "$status"
