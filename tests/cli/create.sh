#!/bin/bash
# qcowkit create: formats, sizes, backing files, options, errors.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir

expect_rc 0 "$Q" create -f qcow a.qcow 1M
expect_out "Formatting 'a.qcow', fmt=qcow size=1048576"
[ "$(head -c 4 a.qcow | od -An -tx1 | tr -d ' ')" == "514649fb" ] ||
    fail "no qcow magic"

# Default format is raw, as qemu-img's.
expect_rc 0 "$Q" create r.raw 64k
expect_out "Formatting 'r.raw', fmt=raw size=65536"
[ "$(stat -c %s r.raw)" -eq 65536 ] || fail "raw size"

expect_rc 0 "$Q" create -q -f qcow q.qcow 1.5M
expect_out ""
expect_rc 0 "$Q" info --output=json q.qcow
grep -q '"virtual-size": 1572864' out || fail "1.5M"

# Suffixes, upper and lower case; hex.
for s in 1k 1K 1m 1M 1g 1G 1t 1T 512b 0x200; do
    expect_rc 0 "$Q" create -q -f qcow s.qcow "$s"
done

# Bad sizes: one line, exit 1, no file left behind.
for s in -1 1Q 1kB abc 1.5 99999999999999999999 8E ""; do
    rm -f bad.qcow
    expect_rc 1 "$Q" create -f qcow bad.qcow -- "$s"
    expect_err "^qcowkit: Invalid image size specified"
    [ ! -e bad.qcow ] || fail "size '$s' left a file"
done
expect_rc 1 "$Q" create -f qcow nosize.qcow
expect_err "^qcowkit: nosize.qcow: Image creation needs a size parameter$"
expect_rc 1 "$Q" create -f vmdk x.img 1M
expect_err "^qcowkit: Unknown file format 'vmdk'$"
expect_rc 1 "$Q" create -f qcow x.qcow 1M extra
expect_err "^qcowkit: Unexpected argument: extra$"
expect_rc 1 "$Q" create
expect_err "^qcowkit: Expecting image file name$"

# Backing files: size from the backing file, format required.
expect_rc 0 "$Q" create -f qcow -b a.qcow -F qcow b.qcow
expect_out "Formatting 'b.qcow', fmt=qcow size=1048576 backing_file=a.qcow backing_fmt=qcow"
expect_rc 0 "$Q" info b.qcow
grep -q "^backing file: a.qcow$" out || fail "backing file line"
grep -q "^cluster_size: 512$" out || fail "overlay cluster size"
expect_rc 1 "$Q" create -f qcow -b a.qcow c.qcow
expect_err "Backing file specified without backing format"
expect_rc 1 "$Q" create -f qcow -b missing.qcow -F qcow c.qcow
expect_err "^qcowkit: c.qcow: .*missing.qcow"
expect_rc 0 "$Q" create -q -u -f qcow -b missing.qcow -F qcow c.qcow 1M
expect_rc 1 "$Q" create -f raw -b a.qcow -F qcow r2.raw 1M
expect_err "Backing file not supported for file format 'raw'"
expect_rc 1 "$Q" create -f qcow -b same.qcow -F qcow same.qcow 1M
expect_err "same filename as the backing file"
# The image itself under another name: refused before the file is touched
# (relative to the image's folder, absolute, symlink, hard link; with and
# without -u; -b and -o backing_file=).
mkdir -p self
expect_rc 0 "$Q" create -q -f qcow self/x.qcow 4M
expect_rc 0 "$Q" io -c 'write -P 0x5a 0 64k' self/x.qcow
cp self/x.qcow self.orig
ln -s x.qcow self/sym.qcow
ln self/x.qcow self/hard.qcow
for b in ./x.qcow x.qcow "$T/self/x.qcow" sym.qcow hard.qcow ../self/x.qcow; do
    for u in "" -u; do
        expect_rc 1 "$Q" create -f qcow $u -b "$b" -F qcow self/x.qcow 4M
        expect_err "^qcowkit: self/x.qcow: .*'$b'"
        cmp self/x.qcow self.orig || fail "create -b $b $u changed the image"
    done
    expect_rc 1 "$Q" create -f qcow -o "backing_file=$b,backing_fmt=qcow" \
        self/x.qcow
    expect_err "^qcowkit: self/x.qcow: .*'$b'"
    cmp self/x.qcow self.orig || fail "create -o backing_file=$b changed it"
done
# Through the symlink as the target, and a new image naming itself.
expect_rc 1 "$Q" create -f qcow -u -b x.qcow -F qcow self/sym.qcow 4M
expect_err "^qcowkit: self/sym.qcow: .*'x.qcow'"
cmp self/x.qcow self.orig || fail "create through a symlink changed it"
expect_rc 1 "$Q" create -f qcow -u -b ./new.qcow -F qcow self/new.qcow 4M
expect_err "^qcowkit: self/new.qcow: .*'./new.qcow'"
[ ! -e self/new.qcow ] || fail "a self-backed image was created"

# -o options, including the cluster_size extension.
expect_rc 0 "$Q" create -q -f qcow -o size=2M,cluster_size=64k o.qcow
expect_rc 0 "$Q" info o.qcow
grep -q "^cluster_size: 65536$" out || fail "cluster_size option"
grep -q "(2097152 bytes)" out || fail "size option"
expect_rc 0 "$Q" create -q -f qcow -o backing_file=a.qcow,backing_fmt=qcow ob.qcow
expect_rc 0 "$Q" info ob.qcow
grep -q "^backing file: a.qcow$" out || fail "backing_file option"
expect_rc 1 "$Q" create -f qcow -o cluster_size=1000 x.qcow 1M
expect_err "cluster_size"
expect_rc 1 "$Q" create -f qcow -o nonsense=1 x.qcow 1M
expect_err "^qcowkit: Invalid parameter 'nonsense'$"
expect_rc 1 "$Q" create -f raw -o cluster_size=4k x.raw 1M
expect_err "Invalid parameter 'cluster_size'"
expect_rc 0 "$Q" create -f qcow -o help x.qcow
grep -q "cluster_size" out || fail "-o help"

# create overwrites an existing file, as qemu-img does.
expect_rc 0 "$Q" create -q -f qcow a.qcow 2M
expect_rc 0 "$Q" info a.qcow
grep -q "(2097152 bytes)" out || fail "overwrite"

# Byte-identical to qemu-img when it is there.
if have qemu-img; then
    for args in "1M" "10G" "1000" "-b a.qcow -F qcow" "-u -b /abs/x.qcow -F qcow 5M"; do
        rm -f mine.qcow theirs.qcow
        # shellcheck disable=SC2086
        "$Q" create -q -f qcow mine.qcow $args
        # shellcheck disable=SC2086
        qemu-img create -q -f qcow theirs.qcow $args
        cmp mine.qcow theirs.qcow || fail "not identical to qemu-img: $args"
        a=$("$Q" create -f qcow mine.qcow $args)
        b=$(qemu-img create -f qcow mine.qcow $args)
        [ "${a}" == "${b}" ] || fail "Formatting line differs: '$a' / '$b'"
    done
fi
# A raw image of a size that is not whole sectors is rounded up to them,
# by create and by convert into a new file, as qemu-img does.
if have qemu-img; then
    for size in 1 511 513 5242887; do
        rm -f mine.raw theirs.raw
        "$Q" create -q -f raw mine.raw "$size"
        qemu-img create -q -f raw theirs.raw "$size"
        [ "$(stat -c %s mine.raw)" = "$(stat -c %s theirs.raw)" ] ||
            fail "raw size $size: $(stat -c %s mine.raw) bytes"
    done
    head -c 5242887 /dev/urandom >odd.raw
    qemu-img convert -f raw -O raw odd.raw theirs.raw
    "$Q" convert -f raw -O raw odd.raw mine.raw
    cmp mine.raw theirs.raw || fail "convert of an odd-sized raw image"
fi
echo ok
