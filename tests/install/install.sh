#!/bin/bash
# `meson install` into a temporary DESTDIR, then build a program the way a
# user would, with `pkg-config --cflags --libs qcowkit`, and run it against
# the installed shared library.
# usage: install.sh MESON BUILD_ROOT SANITIZE HAVE_MAN
set -eu
source "$(dirname "$0")/../harness/functions.sh"
meson=$1 build=$2 sanitize=$3 have_man=$4
cc=${CC:-cc}
requires pkg-config "$cc"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dest=$tmp/dest

"$meson" install -C "$build" --no-rebuild --quiet --destdir "$dest" ||
    fail "meson install"

pc=$(find "$dest" -name qcowkit.pc | head -n 1)
[ -n "$pc" ] || fail "no qcowkit.pc installed"
pcdir=$(dirname "$pc")
libdir=$(dirname "$pcdir")
prefix=$(sed -n 's/^prefix=//p' "$pc")
root=$dest$prefix

# The command links the shared library.  It carries no rpath into the
# install (and none into the build tree), so the DESTDIR's library is
# found through LD_LIBRARY_PATH, as under any prefix outside the loader's
# path.
[ -x "$root/bin/qcowkit" ] || fail "no bin/qcowkit"
export LD_LIBRARY_PATH="$libdir"
if command -v readelf >/dev/null 2>&1; then
    dynamic=$(readelf -d "$root/bin/qcowkit")
    grep -q 'NEEDED.*\[libqcowkit\.so\.0\]' <<<"$dynamic" ||
        fail "the installed command does not link libqcowkit.so.0"
    ! grep -qF "$build" <<<"$dynamic" ||
        fail "the installed command names the build tree: $dynamic"
fi
if command -v ldd >/dev/null 2>&1; then
    ldd "$root/bin/qcowkit" | grep "libqcowkit" | grep -qF "$libdir/" ||
        fail "the command does not use the installed library: $(ldd "$root/bin/qcowkit")"
fi
"$root/bin/qcowkit" --version | grep -q "qcowkit version" ||
    fail "the installed command does not run"

# What is installed besides the library and the command.
[ -f "$root/include/qcowkit.h" ] || fail "no include/qcowkit.h"
[ -f "$root/share/doc/qcowkit/LICENSE" ] || fail "no LICENSE"
completion=$(find "$dest" -path '*/bash-completion/completions/qcowkit')
[ -n "$completion" ] || fail "no bash completion"
bash -n "$completion" || fail "the completion script does not parse"
if [ "$have_man" = true ]; then
    [ -f "$root/share/man/man1/qcowkit.1" ] || fail "no man page"
fi

# The shared library with its soname links.
[ -L "$libdir/libqcowkit.so" ] || fail "no libqcowkit.so link"
soname=$(readlink "$libdir/libqcowkit.so")
[ "$soname" = libqcowkit.so.0 ] || fail "libqcowkit.so -> $soname"
[ -f "$libdir/$(readlink "$libdir/$soname")" ] || fail "dangling $soname"

cat >"$tmp/user.c" <<'PROG'
#include <qcowkit.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    struct qcowkit_create_opts co;
    struct qcowkit_image *img;
    struct qcowkit_io *io;
    char buf[512], back[512];

    if (strcmp(qcowkit_version(), QCOWKIT_VERSION_STRING) != 0)
        return 2;
    qcowkit_create_opts_init(&co);
    co.size = 1 << 20;
    memset(buf, 'q', sizeof buf);
    if (qcowkit_io_new_memory(NULL, 0, &io) < 0 ||
        qcowkit_create_io(io, "user.qcow", &co) < 0 ||
        qcowkit_open_io(io, "user.qcow", NULL, &img) < 0) {
        fprintf(stderr, "%s\n", qcowkit_errmsg());
        return 1;
    }
    if (qcowkit_pread(img, back, sizeof back, 4096) < 0 || back[0] != 0)
        return 1;
    qcowkit_close(img);
    qcowkit_io_close(io);
    (void)buf;
    printf("user program: libqcowkit %s\n", qcowkit_version());
    return 0;
}
PROG

export PKG_CONFIG_PATH="$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export PKG_CONFIG_SYSROOT_DIR="$dest"
flags=$(pkg-config --cflags --libs qcowkit) || fail "pkg-config qcowkit"
case $flags in *"$dest"*) ;; *) fail "pkg-config flags miss the destdir: $flags" ;; esac
extra=
[ "$sanitize" = none ] || extra="-fsanitize=$sanitize"
# shellcheck disable=SC2086
"$cc" $extra -o "$tmp/user" "$tmp/user.c" $flags || fail "compiling with $flags"

if command -v ldd >/dev/null 2>&1; then
    ldd "$tmp/user" | grep "libqcowkit" | grep -qF "$libdir/" ||
        fail "not linked to the installed library: $(ldd "$tmp/user")"
fi
"$tmp/user" || fail "the user program failed"
echo "install: $(cd "$dest" && find . -type f | wc -l) files; built with $flags"
