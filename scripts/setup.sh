#!/usr/bin/env bash
# Install every build and test dependency of qcowkit from Debian packages.
# Idempotent: packages already installed are left alone, and `apt-get update`
# runs only when something has to be installed.  Meant for Debian 12 as root
# (uses sudo when not root and sudo exists).
set -euo pipefail

REQUIRED=(
    build-essential meson ninja-build pkg-config python3
    zlib1g-dev libdeflate-dev libssl-dev
    qemu-utils
    clang llvm libclang-rt-14-dev
    libfuse3-dev fuse3
    libnbd-bin python3-libnbd
    strace
    clang-format
    scdoc bash-completion
)
# Installed when the archive has them; their absence is not an error.
OPTIONAL=(
    nbdkit
    libqcow-utils # bench/fuse.sh: qcowmount, the reference for qcowkit mount
    python3-dev python3-pytest python3-libqcow python3-mesonpy python3-pip # Python module (python/)
    nbdkit-plugin-dev nginx-light gnutls-bin xz-utils qemu-block-extra # nbdkit filter: build, tests, bench
    debhelper dpkg-dev dh-python lintian nbdkit-plugin-dev python3-dev # Debian packages (scripts/package.sh)
)

export DEBIAN_FRONTEND=noninteractive

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo -E)
    fi
fi

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

candidate() {
    local c
    c=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { print $2 }')
    [ -n "$c" ] && [ "$c" != "(none)" ]
}

apt_install() {
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends "$@"
}

missing=()
for p in "${REQUIRED[@]}"; do
    installed "$p" || missing+=("$p")
done

updated=0
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    "${SUDO[@]}" apt-get update -q
    updated=1
    apt_install "${missing[@]}"
fi

for p in "${OPTIONAL[@]}"; do
    installed "$p" && continue
    if candidate "$p"; then
        echo "setup: installing optional package $p" >&2
        if ! apt_install "$p"; then
            # Stale package lists can make a download fail; refresh once.
            if [ "$updated" -eq 0 ] && "${SUDO[@]}" apt-get update -q; then
                updated=1
                apt_install "$p" ||
                    echo "setup: warning: could not install $p (optional)" >&2
            else
                echo "setup: warning: could not install $p (optional)" >&2
            fi
        fi
    else
        echo "setup: optional package $p is not available; skipping" >&2
    fi
done

# Final check: every required package must now be present.
still=()
for p in "${REQUIRED[@]}"; do
    installed "$p" || still+=("$p")
done
if [ "${#still[@]}" -gt 0 ]; then
    echo "setup: error: still missing: ${still[*]}" >&2
    exit 1
fi
