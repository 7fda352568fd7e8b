#!/usr/bin/env bash
# Set up, build, and show qcowkit at work on a throw-away image chain:
# a raw base, a qcow overlay written on top of it, and a compressed copy.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

bash scripts/build.sh

QCOWKIT=$ROOT/build/qcowkit
WORK=$(mktemp -d "${TMPDIR:-/tmp}/qcowkit-demo.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

# Echo a command (as the user would type it), then run it.
run() {
    local shown=() a
    for a in "$@"; do
        case $a in
        *[[:space:]\'\"\$\\]* | '') shown+=("'${a//\'/\'\\\'\'}'") ;;
        *) shown+=("$a") ;;
        esac
    done
    printf '\n$ %s\n' "${shown[*]}"
    "$@"
}
qcowkit() { "$QCOWKIT" "$@"; }

echo
echo "demo: working in $WORK"
run qcowkit create -f raw base.raw 64M
run qcowkit io -f raw -c 'write -P 0xab 0 1M' base.raw
run qcowkit create -f qcow -b base.raw -F raw overlay.qcow 64M
run qcowkit io -c 'write -P 0xcd 512k 1M' overlay.qcow
run qcowkit convert -c -O qcow overlay.qcow packed.qcow
run qcowkit info packed.qcow
run qcowkit map overlay.qcow
run qcowkit map --output=json packed.qcow
run qcowkit compare overlay.qcow packed.qcow
run ls -ls base.raw overlay.qcow packed.qcow

echo
echo "demo: done"
