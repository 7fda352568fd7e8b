#!/bin/bash
# Hardening of the qcowkit command: bad sizes, missing files, folders,
# permissions, read-only files, existing outputs, backing file names and
# missing backing files, and two users of one image.  Each refused command
# prints one clear line, exits non-zero and leaves the image unchanged.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir

pids=()
cleanup() {
    local p
    exec 3>&- 4>&- 2>/dev/null || true
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    cd /
    rm -rf "$T"
}
trap cleanup EXIT

# refused RC PATTERN FILE CMD...: CMD exits RC with one line on stderr
# matching PATTERN, and FILE (which may not exist) is unchanged.
refused() {
    local rc=$1 pattern=$2 file=$3 before after
    shift 3
    before=$(if [ -e "$file" ]; then sha256sum <"$file"; else echo none; fi)
    expect_rc "$rc" "$@"
    expect_err "$pattern"
    after=$(if [ -e "$file" ]; then sha256sum <"$file"; else echo none; fi)
    [ "$before" == "$after" ] || fail "'$*' changed $file"
}

# wait_for FILE PATTERN: until FILE has a line matching PATTERN (10 s).
wait_for() {
    local i
    for i in $(seq 100); do
        grep -Eq "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    fail "timed out waiting for '$2' in $1: $(cat "$1")"
}

"$Q" create -q -f qcow img.qcow 1M
"$Q" io -c 'write -P 0x5a 0 64k' img.qcow >/dev/null

# ----------------------------------------------------------------- sizes

for s in 1x "" 99999999999999999999 16E 8E 1.5 "1 M" 1kk 1M2 k; do
    refused 1 "^qcowkit: Invalid image size specified: '$s': " new.qcow \
        "$Q" create -f qcow new.qcow "$s"
    [ ! -e new.qcow ] || fail "create '$s' made a file"
done
refused 1 "^qcowkit: Invalid image size specified: '-1M': negative sizes" \
    new.qcow "$Q" create -f qcow new.qcow -- -1M
refused 1 "^qcowkit: Invalid image size specified: '99999999999999999999': value too large \(must be between 0 and 9223372036854775807\)$" \
    new.qcow "$Q" create -f qcow new.qcow 99999999999999999999
# A bad size does not touch an existing image of that name.
refused 1 "^qcowkit: Invalid image size specified" img.qcow \
    "$Q" create -f qcow img.qcow 1x
for o in size=-1 size=1x size= size=99999999999999999999; do
    refused 1 "^qcowkit: Invalid size '.*' for parameter 'size'" img.qcow \
        "$Q" create -f qcow -o "$o" img.qcow
done
# Zero, and the largest size qemu-img takes (it writes a header QEMU
# cannot open again: "Image too large"); qcowkit refuses both.
# (qemu-img empties an existing file first; qcowkit leaves it alone.)
for f in new.qcow img.qcow; do
    refused 1 "^qcowkit: $f: image size must not be zero$" $f \
        "$Q" create -q -f qcow $f 0
    refused 1 "^qcowkit: $f: size .* more than the format allows$" $f \
        "$Q" create -q -f qcow $f 9223372036854775807
done
[ ! -e new.qcow ] || fail "a refused create left a file"
# Sizes qemu-img takes: the same bytes.
for s in 1.5k 0x10 +1M " 1M" 1G 2T; do
    rm -f k.qcow q.qcow
    expect_rc 0 "$Q" create -q -f qcow k.qcow "$s"
    if have qemu-img; then
        qemu-img create -q -f qcow q.qcow "$s"
        cmp k.qcow q.qcow || fail "create '$s' differs from qemu-img's"
    fi
done

# Offsets and lengths of map, convert -S, io.
for a in --start-offset=-1 --start-offset=1x --max-length= --max-length=16E; do
    expect_rc 1 "$Q" map "$a" img.qcow
    expect_err "^qcowkit: Invalid (start offset|max length) '"
done
expect_rc 1 "$Q" map --max-length=99999999999999999999 img.qcow
expect_err "^qcowkit: Invalid max length '99999999999999999999': value too large \(must be between 0 and 9223372036854775807\)$"
for s in 1x -1 99999999999999999999 100; do
    refused 1 "^qcowkit: Invalid buffer size for sparse output specified" \
        out.qcow "$Q" convert -S "$s" -O qcow img.qcow out.qcow
    [ ! -e out.qcow ] || fail "convert -S $s made a file"
done
sum=$(sha256sum <img.qcow)
expect_rc 1 "$Q" io -c 'read 99999999999999999999 1' img.qcow
expect_out "Parsing error: argument too large -- 99999999999999999999"
expect_rc 1 "$Q" io -c 'write 8E 1' img.qcow
expect_out "Parsing error: argument too large -- 8E"
expect_rc 1 "$Q" io -c 'write 0 1x' img.qcow
expect_out "Parsing error: non-numeric argument, or extraneous/unrecognized suffix -- 1x"
expect_rc 1 "$Q" io -c 'write 1M 1' img.qcow
expect_out "write failed: Input/output error"
expect_rc 1 "$Q" io -c 'write 1048575 2' img.qcow
expect_out "write failed: Input/output error"
[ "$(sha256sum <img.qcow)" == "$sum" ] || fail "refused io writes changed img.qcow"

# ------------------------------------------------- missing files, folders

for cmd in info map check; do
    refused 1 "^qcowkit: missing.qcow: No such file or directory$" missing.qcow \
        "$Q" $cmd missing.qcow
done
refused 1 "^qcowkit: missing.qcow: No such file or directory$" missing.qcow \
    "$Q" io -c 'read 0 1' missing.qcow
refused 2 "^qcowkit: missing.qcow: No such file or directory$" img.qcow \
    "$Q" compare img.qcow missing.qcow
refused 1 "^qcowkit: missing.qcow: No such file or directory$" out.raw \
    "$Q" convert -O raw missing.qcow out.raw
[ ! -e out.raw ] || fail "convert of a missing file made its output"
[ ! -e missing.qcow ] || fail "a missing file was created"

mkdir folder
for cmd in info map check; do
    refused 1 "^qcowkit: folder: Is a directory$" img.qcow "$Q" $cmd folder
done
refused 1 "^qcowkit: folder: Is a directory$" img.qcow \
    "$Q" io -c 'write 0 1' folder
refused 2 "^qcowkit: folder: Is a directory$" img.qcow \
    "$Q" compare img.qcow folder
refused 1 "^qcowkit: folder: Is a directory$" img.qcow \
    "$Q" convert -O qcow img.qcow folder
refused 1 "^qcowkit: folder: Is a directory$" img.qcow \
    "$Q" create -q -f qcow folder 1M
refused 1 "^qcowkit: .*folder.*: Is a directory$" img.qcow \
    "$Q" create -q -f qcow -b folder -F qcow ov.qcow
[ -d folder ] && [ ! -e ov.qcow ] || fail "folder or overlay changed"

# ---------------------------------------------------------- permissions

# Root is never denied, so run those cases as nobody when we are root.
as_user=()
if [ "$(id -u)" == 0 ]; then
    if have setpriv && setpriv --reuid=65534 --regid=65534 --clear-groups true 2>/dev/null; then
        as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
        chmod 755 "$T"
    else
        as_user=(skip)
        echo "NOTE: running as root without setpriv: permission cases skipped" >&2
    fi
fi
if [ "${as_user[0]:-}" != skip ]; then
    mkdir perm
    chmod 777 perm
    "$Q" create -q -f qcow perm/img.qcow 1M
    "$Q" io -c 'write -P 1 0 4k' perm/img.qcow >/dev/null
    chmod 000 perm/img.qcow
    for cmd in info map check; do
        refused 1 "^qcowkit: perm/img.qcow: Permission denied$" perm/img.qcow \
            "${as_user[@]}" "$Q" $cmd perm/img.qcow
    done
    chmod 444 perm/img.qcow
    expect_rc 0 "${as_user[@]}" "$Q" io -r -c 'read -P 1 0 4k' perm/img.qcow
    refused 1 "^qcowkit: perm/img.qcow: Permission denied$" perm/img.qcow \
        "${as_user[@]}" "$Q" io -c 'write 0 1' perm/img.qcow
    refused 1 "^qcowkit: perm/img.qcow: Permission denied$" perm/img.qcow \
        "${as_user[@]}" "$Q" check -r leaks perm/img.qcow
    refused 1 "^qcowkit: perm/img.qcow: Permission denied$" perm/img.qcow \
        "${as_user[@]}" "$Q" create -q -f qcow perm/img.qcow 1M
    refused 1 "^qcowkit: perm/img.qcow: Permission denied$" perm/img.qcow \
        "${as_user[@]}" "$Q" convert -O qcow img.qcow perm/img.qcow
    chmod 555 perm
    refused 1 "^qcowkit: perm/new.qcow: Permission denied$" perm/new.qcow \
        "${as_user[@]}" "$Q" create -q -f qcow perm/new.qcow 1M
    [ ! -e perm/new.qcow ] || fail "made a file in a read-only folder"
    chmod 755 perm
fi

# -------------------------------------------------- read-only file system

# A read-only bind mount in a private mount namespace (needs root).
if [ "$(id -u)" == 0 ] && have unshare && unshare -m --propagation private true 2>/dev/null; then
    mkdir ro
    "$Q" create -q -f qcow ro/img.qcow 1M
    "$Q" io -c 'write -P 2 0 4k' ro/img.qcow >/dev/null
    sum=$(sha256sum <ro/img.qcow)
    # The cases run inside the namespace; their results come back in files.
    rc=0
    unshare -m --propagation private bash -c '
        set -u
        Q=$1
        mount --bind ro ro && mount -o remount,bind,ro ro || exit 77
        run() { local n=$1; shift; "$@" >"$n.out" 2>"$n.err"; echo $? >"$n.rc"; }
        run w "$Q" io -c "write 0 1" ro/img.qcow
        run r "$Q" io -r -c "read -P 2 0 4k" ro/img.qcow
        run c "$Q" check ro/img.qcow
        run ca "$Q" check -r all ro/img.qcow
        run cr "$Q" create -q -f qcow ro/img.qcow 1M
        run cn "$Q" create -q -f qcow ro/new.qcow 1M
        run cv "$Q" convert -O qcow img.qcow ro/img.qcow
    ' bash "$Q" || rc=$?
    if [ "$rc" == 77 ]; then
        echo "NOTE: no read-only bind mount here: read-only file system cases skipped" >&2
    else
        [ "$rc" == 0 ] || fail "unshare exited $rc"
        for n in w ca cr cn cv; do
            [ "$(cat $n.rc)" == 1 ] || fail "ro case $n exited $(cat $n.rc): $(cat $n.err)"
            [ "$(wc -l <$n.err)" == 1 ] || fail "ro case $n: $(cat $n.err)"
            grep -q "^qcowkit: ro/.*Read-only file system$" $n.err ||
                fail "ro case $n: $(cat $n.err)"
        done
        for n in r c; do
            [ "$(cat $n.rc)" == 0 ] || fail "ro case $n exited $(cat $n.rc): $(cat $n.err)"
        done
        [ "$(sha256sum <ro/img.qcow)" == "$sum" ] || fail "read-only image changed"
        [ ! -e ro/new.qcow ] || fail "created a file on a read-only mount"
    fi
else
    echo "NOTE: not root or no unshare: read-only file system cases skipped" >&2
fi

# ------------------------------------------------------- existing outputs

# create and convert overwrite an existing file, as qemu-img does.
head -c 3M /dev/urandom >junk.bin
for tool in k q; do
    cp junk.bin ex-$tool.qcow
    cp junk.bin cv-$tool.qcow
    cp junk.bin cv-$tool.raw
done
expect_rc 0 "$Q" create -q -f qcow ex-k.qcow 1M
expect_rc 0 "$Q" convert -O qcow img.qcow cv-k.qcow
expect_rc 0 "$Q" convert -O raw img.qcow cv-k.raw
expect_rc 0 "$Q" check cv-k.qcow
[ "$(stat -c %s cv-k.raw)" == 1048576 ] || fail "raw output not truncated"
if have qemu-img; then
    qemu-img create -q -f qcow ex-q.qcow 1M
    qemu-img convert -O qcow img.qcow cv-q.qcow
    qemu-img convert -O raw img.qcow cv-q.raw
    cmp ex-k.qcow ex-q.qcow || fail "create over a file differs from qemu-img"
    cmp cv-k.qcow cv-q.qcow || fail "convert over a file differs from qemu-img"
    cmp cv-k.raw cv-q.raw || fail "convert -O raw over a file differs from qemu-img"
fi
# An image converted onto itself: refused (its source holds it), unchanged.
cp img.qcow self.qcow
refused 1 "^qcowkit: self.qcow: image is in use" self.qcow \
    "$Q" convert -O qcow self.qcow self.qcow
if have qemu-img; then
    rc=0
    qemu-img convert -O qcow self.qcow self.qcow 2>/dev/null || rc=$?
    [ "$rc" == 1 ] || fail "qemu-img convert onto its source exited $rc"
fi

# -------------------------------------------------------- backing names

# Relative names are resolved against the overlay's folder, as QEMU does.
mkdir -p base a/b
"$Q" create -q -f qcow base/base.qcow 1M
"$Q" io -c 'write -P 0x11 0 4k' base/base.qcow >/dev/null
"$Q" create -q -f qcow -b "$T/base/base.qcow" -F qcow a/abs.qcow
"$Q" create -q -f qcow -b base.qcow -F qcow base/same.qcow
"$Q" create -q -f qcow -b ../../base/base.qcow -F qcow a/b/dotdot.qcow
"$Q" create -q -f qcow -b ../b/../../base/base.qcow -F qcow a/b/dotdot2.qcow
ln -s a/b linked
for ov in a/abs.qcow base/same.qcow a/b/dotdot.qcow a/b/dotdot2.qcow linked/dotdot.qcow; do
    expect_rc 0 "$Q" io -c 'read -P 0x11 0 4k' -c 'read -P 0 4k 4k' "$ov"
    expect_rc 0 "$Q" info --backing-chain "$ov"
    [ "$(grep -c '^image: ' out)" == 2 ] || fail "chain of $ov: $(cat out)"
    if have qemu-img; then
        diff <(qemu-img info --backing-chain "$ov") out ||
            fail "info --backing-chain $ov differs from qemu-img"
        qemu-io -c 'read -P 0x11 0 4k' "$ov" >/dev/null ||
            fail "qemu-io reads $ov"
    fi
    (cd "$(dirname "$ov")" && "$Q" io -c 'read -P 0x11 0 4k' "$(basename "$ov")" >/dev/null) ||
        fail "$ov from its own folder"
done
expect_rc 0 "$Q" info a/b/dotdot.qcow
grep -q "^backing file: ../../base/base.qcow (actual path: a/b/../../base/base.qcow)$" out ||
    fail "stored name: $(cat out)"
# Resolved against the overlay's folder, not the current one.
cp base/base.qcow here.qcow
refused 1 "^qcowkit: a/rel.qcow: a/here.qcow: No such file or directory$" \
    a/rel.qcow "$Q" create -q -f qcow -b here.qcow -F qcow a/rel.qcow
[ ! -e a/rel.qcow ] || fail "overlay made with a missing backing file"
# A symlink to an overlay: resolved against the link's folder, as QEMU.
ln -s a/b/dotdot.qcow link.qcow
refused 1 "^qcowkit: link.qcow: cannot open backing file '../../base/base.qcow': No such file or directory$" \
    link.qcow "$Q" io -c 'read 0 1' link.qcow

# ------------------------------------------------- missing backing file

"$Q" create -q -u -f qcow -b gone.qcow -F qcow orphan.qcow 1M
msg="^qcowkit: orphan.qcow: cannot open backing file 'gone.qcow': No such file or directory$"
refused 1 "$msg" orphan.qcow "$Q" io -c 'read 0 1' orphan.qcow
refused 1 "$msg" orphan.qcow "$Q" io -c 'write 0 1' orphan.qcow
refused 1 "$msg" orphan.qcow "$Q" map orphan.qcow
refused 1 "$msg" orphan.qcow "$Q" convert -O raw orphan.qcow out.raw
refused 2 "$msg" orphan.qcow "$Q" compare orphan.qcow img.qcow
refused 1 "^qcowkit: gone.qcow: No such file or directory$" orphan.qcow \
    "$Q" info --backing-chain orphan.qcow
expect_rc 0 "$Q" info orphan.qcow
expect_rc 0 "$Q" check orphan.qcow # the check does not need the chain
refused 1 "^qcowkit: ov.qcow: gone.qcow: No such file or directory$" ov.qcow \
    "$Q" create -q -f qcow -b gone.qcow -F qcow ov.qcow
[ ! -e ov.qcow ] || fail "overlay made with a missing backing file"

# ------------------------------------------------------ two users at once

# A qcowkit writer reading commands from a fifo.
"$Q" create -q -f qcow shared.qcow 1M
mkfifo cmds
"$Q" io shared.qcow <cmds >writer.out 2>&1 &
pids+=($!)
exec 3>cmds
echo 'write -P 0x33 0 4k' >&3
echo 'flush' >&3
echo 'length' >&3 # answers once the flush is done
wait_for writer.out "1 MiB$"
busy="^qcowkit: shared.qcow: image is in use: another process writes it"
refused 1 "$busy" shared.qcow "$Q" io -c 'write -P 0x44 0 4k' shared.qcow
refused 1 "$busy" shared.qcow "$Q" io -r -c 'read 0 1' shared.qcow
refused 1 "$busy" shared.qcow "$Q" info shared.qcow
refused 1 "$busy" shared.qcow "$Q" map shared.qcow
refused 1 "$busy" shared.qcow "$Q" check shared.qcow
refused 1 "$busy" shared.qcow "$Q" check -r leaks shared.qcow
refused 1 "$busy" shared.qcow "$Q" create -q -f qcow shared.qcow 1M
refused 1 "$busy" shared.qcow "$Q" convert -O qcow img.qcow shared.qcow
refused 1 "$busy" shared.qcow "$Q" dd -O qcow if=img.qcow of=shared.qcow
refused 1 "$busy" shared.qcow "$Q" convert -O raw shared.qcow out.raw
refused 2 "$busy" shared.qcow "$Q" compare shared.qcow img.qcow
# -U lets readers in.
expect_rc 0 "$Q" io -r -U -c 'read -P 0x33 0 4k' shared.qcow
expect_rc 0 "$Q" info -U shared.qcow
expect_rc 0 "$Q" map -U shared.qcow
expect_rc 0 "$Q" check -U shared.qcow
refused 1 "force-share" shared.qcow "$Q" check -U -r leaks shared.qcow
refused 1 "force-share" shared.qcow "$Q" io -U -c 'write 0 1' shared.qcow
if have qemu-io; then
    sum=$(sha256sum <shared.qcow)
    expect_rc 1 qemu-io -c 'write 0 1' shared.qcow
    grep -q 'Failed to get "write" lock' err || fail "qemu-io: $(cat err)"
    expect_rc 1 qemu-io -r -c 'read 0 1' shared.qcow
    grep -q 'Failed to get shared "write" lock' err || fail "qemu-io -r: $(cat err)"
    expect_rc 0 qemu-io -r -U -c 'read -P 0x33 0 4k' shared.qcow
    [ "$(sha256sum <shared.qcow)" == "$sum" ] || fail "qemu-io changed it"
fi
echo 'write -P 0x55 4k 4k' >&3
echo 'quit' >&3
exec 3>&-
wait "${pids[0]}" || fail "the writer failed: $(cat writer.out)"
pids=()
expect_rc 0 "$Q" io -c 'read -P 0x33 0 4k' -c 'read -P 0x55 4k 4k' shared.qcow
expect_rc 0 "$Q" check shared.qcow

# A qcowkit reader keeps writers out, and lets other readers in.
rm -f cmds
mkfifo cmds
"$Q" io -r shared.qcow <cmds >reader.out 2>&1 &
pids+=($!)
exec 3>cmds
echo 'read -P 0x33 0 4k' >&3
wait_for reader.out "read 4096/4096"
reader="^qcowkit: shared.qcow: image is in use: another process uses it and forbids writing"
refused 1 "$reader" shared.qcow "$Q" io -c 'write 0 1' shared.qcow
refused 1 "$reader" shared.qcow "$Q" check -r all shared.qcow
refused 1 "$reader" shared.qcow "$Q" create -q -f qcow shared.qcow 1M
refused 1 "$reader" shared.qcow "$Q" convert -O raw img.qcow shared.qcow
refused 1 "$reader" shared.qcow "$Q" dd -O raw if=img.qcow of=shared.qcow
expect_rc 0 "$Q" io -r -c 'read -P 0x33 0 4k' shared.qcow
expect_rc 0 "$Q" check shared.qcow
echo 'quit' >&3
exec 3>&-
wait "${pids[0]}" || fail "the reader failed: $(cat reader.out)"
pids=()

# qemu-io as the writer: qcowkit must stay out.
if have qemu-io; then
    rm -f cmds
    mkfifo cmds
    qemu-io shared.qcow <cmds >qwriter.out 2>&1 &
    pids+=($!)
    exec 3>cmds
    # QEMU's qcow driver writes its tables at once: done when it says so.
    echo 'write -P 0x66 8k 4k' >&3
    echo 'flush' >&3
    wait_for qwriter.out "wrote 4096/4096"
    refused 1 "$busy" shared.qcow "$Q" io -c 'write 0 1' shared.qcow
    refused 1 "$busy" shared.qcow "$Q" check -r leaks shared.qcow
    refused 1 "$busy" shared.qcow "$Q" create -q -f qcow shared.qcow 1M
    refused 1 "$busy" shared.qcow "$Q" convert -O qcow img.qcow shared.qcow
    expect_rc 0 "$Q" io -r -U -c 'read -P 0x66 8k 4k' shared.qcow
    echo 'quit' >&3
    exec 3>&-
    wait "${pids[0]}" || fail "qemu-io writer failed: $(cat qwriter.out)"
    pids=()
    expect_rc 0 "$Q" check shared.qcow
fi

echo ok
