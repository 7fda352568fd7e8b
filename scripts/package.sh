#!/usr/bin/env bash
# Build qcowkit's Debian packages from this tree and try them as installed.
# usage: bash scripts/package.sh [OUTDIR]        (default: build-deb/)
#
#  1. Copies the tree (git's tracked and untracked, not ignored, files) to a
#     temporary folder: dpkg-buildpackage writes its results into the parent
#     of the source folder, which must not be the clone's parent.
#  2. dpkg-buildpackage -us -uc -b with nocheck (the test suite has its own
#     run); the .deb, .changes and .buildinfo files land in OUTDIR.
#  3. Checks that apt could install them together (apt-get -s, a simulation)
#     and unpacks them with `dpkg -x` into a throwaway root.  Nothing is
#     installed on this system: `dpkg -i` would need root, replace whatever
#     qcowkit the system has, and leave packages behind.
#  4. Smoke-tests every installed part from that root: the command (version,
#     convert, info, compare, man page, completion), a C program built with
#     pkg-config against the -dev files (shared and static), `import
#     qcowkit`, and nbdkit loading the filter by name (a private mount
#     namespace puts the root's filter folder at nbdkit's filterdir).
#  5. Runs lintian on the .changes: errors fail, warnings are printed.
#
# DEB_BUILD_PROFILES is honoured (nocheck is always added):
# pkg.qcowkit.nonbdkit and pkg.qcowkit.nopython drop those two packages and
# their checks.  QCOWKIT_KEEP_TMP=1 keeps the temporary folder.
#
# Exits 0 when everything passed, 1 on a failure, 77 when it cannot run
# (debhelper or dpkg-dev missing, or build dependencies unmet; the reason is
# printed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
OUT=${1:-$ROOT/build-deb}
PROFILES=nocheck
for profile in ${DEB_BUILD_PROFILES:-}; do
    PROFILES+=,$profile
done

say() { echo "package: $*"; }
# has [GREP-OPTIONS] PATTERN: like grep -q, but reads all its input (grep -q
# stops at the first match, and pipefail would count the writer's SIGPIPE).
has() { grep "$@" >/dev/null; }
die() {
    echo "package: FAIL: $*" >&2
    exit 1
}
skip() {
    echo "package: SKIP: $*"
    exit 77
}

for tool in dpkg-buildpackage dpkg-checkbuilddeps dpkg-architecture dh; do
    command -v "$tool" >/dev/null 2>&1 ||
        skip "$tool is not installed (apt-get install debhelper dpkg-dev)"
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/qcowkit-package.XXXXXX")
if [ "${QCOWKIT_KEEP_TMP:-0}" = 1 ]; then
    trap 'say "kept $TMP"' EXIT
else
    trap 'rm -rf "$TMP"' EXIT
fi
VERSION=$(dpkg-parsechangelog -l debian/changelog -S Version)
UPSTREAM=${VERSION%-*}
SRC=$TMP/qcowkit-$UPSTREAM
DEST=$TMP/root
MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
LIBDIR=$DEST/usr/lib/$MA
PACKAGES=()

# copy_tree: the work tree as git sees it (uncommitted edits included,
# build folders and other ignored files left out).
copy_tree() {
    mkdir -p "$SRC"
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git ls-files -z --cached --others --exclude-standard |
            while IFS= read -r -d '' f; do
                [ -f "$f" ] && printf '%s\0' "$f"
            done | xargs -0 cp --parents -t "$SRC"
    else
        tar -C "$ROOT" --exclude='./build*' --exclude='./.git' -cf - . |
            tar -C "$SRC" -xf -
    fi
}

build_packages() {
    local unmet
    if ! unmet=$(cd "$SRC" && dpkg-checkbuilddeps -P"$PROFILES" 2>&1); then
        skip "build dependencies missing: ${unmet#*: }"
    fi
    mapfile -t PACKAGES < <(cd "$SRC" && DEB_BUILD_PROFILES=${PROFILES//,/ } dh_listpackages)
    say "dpkg-buildpackage -us -uc -b -P$PROFILES in $SRC: ${PACKAGES[*]}"
    if ! (cd "$SRC" &&
        DEB_BUILD_OPTIONS="nocheck parallel=$(nproc) ${DEB_BUILD_OPTIONS:-}" \
            dpkg-buildpackage -us -uc -b -P"$PROFILES") >"$TMP/build.log" 2>&1; then
        tail -n 60 "$TMP/build.log" >&2
        die "dpkg-buildpackage failed (log above)"
    fi
    mkdir -p "$OUT"
    rm -f "$OUT"/*.deb "$OUT"/*.changes "$OUT"/*.buildinfo
    cp "$TMP"/*.deb "$TMP"/*.changes "$TMP"/*.buildinfo "$OUT"/
    cp "$TMP/build.log" "$OUT/"
}

deb_of() { echo "$OUT/${1}_${VERSION}_$(dpkg-architecture -qDEB_HOST_ARCH).deb"; }

unpack_packages() {
    local p debs=()
    for p in "${PACKAGES[@]}"; do
        [ -f "$(deb_of "$p")" ] || die "no package $p was built"
        debs+=("$(deb_of "$p")")
        say "$p: Depends: $(dpkg-deb -f "$(deb_of "$p")" Depends)"
    done
    if command -v apt-get >/dev/null 2>&1; then
        apt-get install -s -q -o Debug::NoLocking=1 "${debs[@]}" \
            >"$TMP/apt.log" 2>&1 || {
            cat "$TMP/apt.log" >&2
            die "apt cannot install the packages together (log above)"
        }
        say "apt-get -s: the packages' dependencies can be met"
    fi
    for p in "${debs[@]}"; do
        dpkg -x "$p" "$DEST"
    done
    # The root's library, for the command, the module and the filter.
    export LD_LIBRARY_PATH=$LIBDIR
}

built() {
    local p
    for p in "${PACKAGES[@]}"; do
        [ "$p" = "$1" ] && return 0
    done
    say "$1: not built (build profile $PROFILES); not checked"
    return 1
}

check_command() {
    local q=$DEST/usr/bin/qcowkit
    [ -x "$q" ] || die "qcowkit: no /usr/bin/qcowkit"
    ldd "$q" | has -F "$LIBDIR/libqcowkit.so.0" ||
        die "qcowkit: does not load the packaged library: $(ldd "$q")"
    "$q" --version | has -F "qcowkit version $UPSTREAM" ||
        die "qcowkit --version: $("$q" --version 2>&1)"
    head -c 3145728 /dev/urandom >"$TMP/disk.raw"
    dd if=/dev/zero of="$TMP/disk.raw" bs=1M seek=1 count=1 conv=notrunc status=none
    "$q" create -q -f qcow "$TMP/empty.qcow" 16M || die "qcowkit create"
    "$q" info --output=json "$TMP/empty.qcow" | has '"virtual-size": 16777216' ||
        die "qcowkit info of a new 16M image: $("$q" info "$TMP/empty.qcow" 2>&1)"
    "$q" convert -c -O qcow "$TMP/disk.raw" "$TMP/disk.qcow" || die "qcowkit convert"
    "$q" info "$TMP/disk.qcow" | has '^file format: qcow$' || die "qcowkit info"
    "$q" compare -q "$TMP/disk.raw" "$TMP/disk.qcow" ||
        die "qcowkit compare: the converted image differs"
    zcat "$DEST/usr/share/man/man1/qcowkit.1.gz" | has '^\.TH "*qcowkit' ||
        die "qcowkit: no man page qcowkit(1)"
    bash -n "$DEST/usr/share/bash-completion/completions/qcowkit" ||
        die "qcowkit: the bash completion does not parse"
    say "qcowkit: --version, create, convert -c, info, compare, man page, completion: ok"
}

# A program reading the image through the library, as a user builds it.
write_c_program() {
    cat >"$TMP/reader.c" <<'PROG'
#include <qcowkit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    static char got[1 << 16], want[1 << 16];
    struct qcowkit_image *img;
    FILE *raw = fopen(argv[2], "rb");
    long long off = 0;

    if (argc != 3 || !raw || qcowkit_open(argv[1], NULL, &img) < 0) {
        fprintf(stderr, "reader: %s\n", qcowkit_errmsg());
        return 1;
    }
    while (fread(want, 1, sizeof want, raw) == sizeof want) {
        if (qcowkit_pread(img, got, sizeof got, off) < 0 || memcmp(got, want, sizeof got)) {
            fprintf(stderr, "reader: differs at %lld\n", off);
            return 1;
        }
        off += sizeof got;
    }
    printf("%s %lld\n", qcowkit_version(), off);
    return qcowkit_close(img) < 0;
}
PROG
}

check_dev_files() {
    local cc=${CC:-cc} cflags libs static
    command -v pkg-config >/dev/null 2>&1 || die "pkg-config is not installed"
    write_c_program
    # The root's .pc first; the sysroot prefixes the paths it names.
    export PKG_CONFIG_SYSROOT_DIR=$DEST PKG_CONFIG_PATH=$LIBDIR/pkgconfig
    read -ra cflags < <(pkg-config --cflags qcowkit)
    read -ra libs < <(pkg-config --libs qcowkit)
    read -ra static < <(pkg-config --static --libs qcowkit | sed 's/-lqcowkit\b//')
    unset PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_PATH
    [ "${cflags[*]}" = "-I$DEST/usr/include" ] ||
        die "libqcowkit-dev: pkg-config --cflags qcowkit: ${cflags[*]}"
    "$cc" -o "$TMP/reader" "$TMP/reader.c" "${cflags[@]}" "${libs[@]}" ||
        die "libqcowkit-dev: cannot build a program with pkg-config"
    readelf -d "$TMP/reader" | has 'NEEDED.*\[libqcowkit\.so\.0\]' ||
        die "libqcowkit-dev: the program does not link libqcowkit.so.0"
    "$TMP/reader" "$TMP/disk.qcow" "$TMP/disk.raw" |
        has -x "$UPSTREAM 3145728" || die "libqcowkit0: the program read wrong data"
    "$cc" -o "$TMP/reader-static" "$TMP/reader.c" "${cflags[@]}" \
        "$LIBDIR/libqcowkit.a" "${static[@]}" ||
        die "libqcowkit-dev: cannot link libqcowkit.a with pkg-config --static"
    ! readelf -d "$TMP/reader-static" | has 'libqcowkit' ||
        die "libqcowkit-dev: the static program still needs the shared library"
    "$TMP/reader-static" "$TMP/disk.qcow" "$TMP/disk.raw" >/dev/null ||
        die "libqcowkit-dev: the statically linked program failed"
    say "libqcowkit0, libqcowkit-dev: pkg-config build, shared and static: ok"
}

check_python() {
    local site=$DEST/usr/lib/python3/dist-packages
    PYTHONPATH=$site python3 - "$site" "$TMP" <<'PY' ||
import sys
site, tmp = sys.argv[1], sys.argv[2]
import qcowkit
assert qcowkit.__file__.startswith(site), qcowkit.__file__
with open(tmp + "/disk.raw", "rb") as raw, qcowkit.open(tmp + "/disk.qcow") as img:
    assert img.read() == raw.read(), "the module read other bytes than the raw file"
PY
        die "python3-qcowkit: import qcowkit or reading through it failed"
    say "python3-qcowkit: import qcowkit from the package, read an image: ok"
}

# nbdkit resolves --filter=qcow in its compiled-in filterdir only; a private
# mount namespace shows it the root's filter folder there instead.
nbdkit_by_name() {
    local sysdir=$1
    shift
    local ns=(unshare --mount --propagation private)
    [ "$(id -u)" -eq 0 ] || ns=(unshare --map-root-user --mount --propagation private)
    # shellcheck disable=SC2016 # the inner shell expands its arguments
    "${ns[@]}" sh -c 'mount --bind "$1" "$2" && shift 2 && exec "$@"' sh \
        "$LIBDIR/nbdkit/filters" "$sysdir" "$@"
}

check_nbdkit_filter() {
    local sysdir cmd=(nbdkit -U - --filter=qcow file "$TMP/disk.qcow"
        --run "nbdcopy \"\$uri\" '$TMP/nbd.raw'")
    [ -f "$LIBDIR/nbdkit/filters/nbdkit-qcow-filter.so" ] ||
        die "nbdkit-qcow-filter: no nbdkit-qcow-filter.so in nbdkit's filter folder"
    if ! command -v nbdkit >/dev/null 2>&1 || ! command -v nbdcopy >/dev/null 2>&1; then
        say "nbdkit-qcow-filter: SKIPPED the load test (nbdkit or nbdcopy missing)"
        return 0
    fi
    sysdir=$(nbdkit --dump-config | sed -n 's/^filterdir=//p')
    if nbdkit_by_name "$sysdir" true 2>/dev/null; then
        nbdkit_by_name "$sysdir" "${cmd[@]}" || die "nbdkit --filter=qcow failed"
        say "nbdkit-qcow-filter: nbdkit --filter=qcow (by name) exports the disk: ok"
    else
        cmd[2]=--filter=$LIBDIR/nbdkit/filters/nbdkit-qcow-filter.so
        "${cmd[@]}" || die "nbdkit --filter=PATH failed"
        say "nbdkit-qcow-filter: no mount namespace here; loaded by path: ok"
    fi
    cmp "$TMP/disk.raw" "$TMP/nbd.raw" || die "nbdkit-qcow-filter: the export differs"
}

run_lintian() {
    local changes rc=0
    unset LD_LIBRARY_PATH
    if ! command -v lintian >/dev/null 2>&1; then
        say "lintian: SKIPPED (not installed: apt-get install lintian)"
        return 0
    fi
    changes=$(ls "$OUT"/*.changes)
    lintian --fail-on error --display-info "$changes" >"$TMP/lintian.log" 2>&1 || rc=$?
    cp "$TMP/lintian.log" "$OUT/"
    grep -E '^[EW]: ' "$TMP/lintian.log" | sed 's/^/package: lintian: /' || true
    say "lintian: $(grep -c '^E: ' "$TMP/lintian.log") errors," \
        "$(grep -c '^W: ' "$TMP/lintian.log") warnings," \
        "$(grep -c '^I: ' "$TMP/lintian.log") info tags (all in $OUT/lintian.log)"
    [ "$rc" -eq 0 ] || die "lintian found errors (exit $rc)"
}

start=$SECONDS
copy_tree
build_packages
say "built in $((SECONDS - start)) s: $(cd "$OUT" && echo ./*.deb)"
unpack_packages
check_command
check_dev_files
! built python3-qcowkit || check_python
! built nbdkit-qcow-filter || check_nbdkit_filter
run_lintian
say "all checks passed in $((SECONDS - start)) s; packages in $OUT"
