#!/bin/bash
# The command itself: help, version, unknown commands.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir

expect_rc 0 "$Q" --help
grep -q "create" out || fail "--help does not list create"
for c in create info convert compare map io; do
    grep -q "qcowkit $c" out || fail "--help does not list $c"
done
expect_rc 0 "$Q" help
expect_rc 0 "$Q" help map
grep -q "^usage: qcowkit map" out || fail "help map"
expect_rc 0 "$Q" --version
grep -Eq "^qcowkit version [0-9]+\.[0-9]+\.[0-9]+" out || fail "--version"
expect_rc 1 "$Q"
expect_err "^qcowkit: Not enough arguments$"
expect_rc 1 "$Q" frobnicate
expect_err "^qcowkit: Command not found: frobnicate$"
expect_rc 1 "$Q" help frobnicate
expect_rc 1 "$Q" info --bogus x
expect_err "^qcowkit: unrecognized option '--bogus'$"
expect_rc 1 "$Q" create -x
expect_err "^qcowkit: unrecognized option '-x'$"
expect_rc 1 "$Q" create -f
expect_err "^qcowkit: missing argument for option '-f'$"
for c in create info convert compare map io; do
    expect_rc 0 "$Q" "$c" --help
done
echo ok
