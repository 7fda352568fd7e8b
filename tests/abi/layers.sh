#!/bin/sh
# Calls inside libqcowkit go one way: down the layers that lib/internal.h
# names, with no cycle between files, and no file calls a public qcowkit_*
# function (public functions take the handle's access lock; internal code
# calls the qk_* function behind them).  Read from the relocations of each
# object of the static library: a call to a function of the same file
# shows there too, since public functions may be interposed.
# usage: layers.sh LIBQCOWKIT.A
set -eu
archive=$1
for tool in ar nm objdump tsort; do
    command -v "$tool" >/dev/null 2>&1 || { echo "SKIP: $tool not found"; exit 77; }
done
case $archive in /*) ;; *) archive=$PWD/$archive ;; esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The layers, lowest first; keep in step with the list in lib/internal.h.
cat >"$tmp/layers" <<'LAYERS'
0 error abi header crypt lru
1 io io-file io-memory lock
2 access barrier backing
3 trust table l1
4 data inflate deflate probe
5 rw status discard
6 compress grow zeroes
7 image resize check chain create
LAYERS

cd "$tmp"
mkdir obj
(cd obj && ar x "$archive")
: >defs
: >refs
for o in obj/*.o; do
    f=$(basename "$o" .o)
    f=${f%.c}
    nm --defined-only -g "$o" | awk -v f="$f" 'NF == 3 { print $3, f }' >>defs
    # Relocations of code and data only (not debug or unwind tables).
    objdump -r "$o" | awk -v f="$f" '
        /^RELOCATION RECORDS FOR/ { keep = $0 !~ /\.(debug|eh_frame)/; next }
        keep && NF == 3 && $1 ~ /^[0-9a-f]+$/ {
            s = $3; sub(/[-+]0x[0-9a-f]+$/, "", s); print f, s }' >>refs
done
[ -s defs ] || { echo "FAIL: no symbols in $archive"; exit 1; }
sort -u refs -o refs
status=0

# 1. No file calls a public function.
awk '
    $2 ~ /^qcowkit_/ {
        print "FAIL: " $1 ".c calls the public " $2 "()" ; bad = 1 }
    END { exit bad }' refs || status=1

# 2. The file graph: "caller callee" for calls between files.
awk 'NR == FNR { file[$1] = $2; next }
     ($2 in file) && file[$2] != $1 { print $1, file[$2] }' defs refs |
    sort -u >edges
if ! tsort edges >/dev/null 2>tsort.err; then
    echo "FAIL: the calls between files of lib/ make a cycle:"
    cat tsort.err
    status=1
fi

# 3. No file calls a file of a higher layer; every file has a layer.
awk 'NR == FNR { for (i = 2; i <= NF; i++) layer[$i] = $1; next }
     { if (!($1 in layer)) { print "FAIL: lib/" $1 ".c has no layer in " \
            "tests/abi/layers.sh (and lib/internal.h)"; bad = 1; next }
       if (!($2 in layer)) next
       if (layer[$1] < layer[$2]) {
           print "FAIL: " $1 ".c (layer " layer[$1] ") calls " $2 ".c (layer " \
               layer[$2] ")"; bad = 1 } }
     END { exit bad }' layers edges || status=1
for o in obj/*.o; do
    f=$(basename "$o" .o)
    f=${f%.c}
    grep -qw -- "$f" layers ||
        { echo "FAIL: lib/$f.c has no layer in tests/abi/layers.sh"; status=1; }
done

[ $status -eq 0 ] && echo "ok: $(wc -l <edges) calls between files, all downward"
exit $status
