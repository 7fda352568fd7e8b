#!/bin/sh
# The man page source is the reference for the command line: every
# subcommand `qcowkit help` lists must be described there and completed
# by the bash completion, and the README's synopses must match it.
# usage: docs.sh QCOWKIT QCOWKIT.1.SCD README.md COMPLETION
set -eu
exe=$1 scd=$2 readme=$3 completion=$4
status=0

commands=$("$exe" help | sed -n 's/^  qcowkit \([a-z][a-z0-9-]*\).*/\1/p' |
    sort -u)
[ -n "$commands" ] || { echo "FAIL: no commands in qcowkit help"; exit 1; }
for c in $commands; do
    if ! grep -q "^\*qcowkit $c\*" "$scd"; then
        echo "FAIL: '$c' (from qcowkit help) has no synopsis in $scd"
        status=1
    fi
    if ! grep -q "^## $c\$" "$scd"; then
        echo "FAIL: '$c' has no section in $scd"
        status=1
    fi
    if ! grep -Eq "(^|[ \"])$c( |\$|\")" "$completion"; then
        echo "FAIL: '$c' is not completed by $completion"
        status=1
    fi
done

# README table rows: | name | `qcowkit name ...` | (with \| for |).
sed -n 's/^| [a-z]* *| `\(qcowkit .*\)` |$/\1/p' "$readme" | sed 's/\\|/|/g' |
    while IFS= read -r synopsis; do
        if ! sed 's/\*//g' "$scd" | grep -qxF "$synopsis"; then
            echo "FAIL: README synopsis not in $scd: $synopsis"
            exit 1
        fi
    done || status=1
[ "$status" -eq 0 ] && echo "docs: $(echo $commands | wc -w) commands" \
    "described, completed, README in step"
exit "$status"
