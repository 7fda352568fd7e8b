#!/bin/bash
# Run scripts/package.sh in the plain build only: it builds the packages
# from the sources with its own flags, so a sanitizer build would repeat
# the same run.
# usage: package.sh PACKAGE_SH OUTDIR SANITIZE
set -eu
source "$(dirname "$0")/../harness/functions.sh"
script=$1 out=$2 sanitize=$3
[ "$sanitize" = none ] ||
    skip "runs in the plain build only (this one has -Db_sanitize=$sanitize)"
exec bash "$script" "$out"
