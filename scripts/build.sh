#!/usr/bin/env bash
# Install dependencies (if missing), configure build/ (once) and compile.
# The command ends up at build/qcowkit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh

if [ -f build/build.ninja ]; then
    : # already configured; ninja re-runs meson itself when meson.build changes
elif [ -f build/meson-private/coredata.dat ]; then
    meson setup --reconfigure build
else
    meson setup build
fi
meson compile -C build

echo "build: the command is $(pwd)/build/qcowkit"
