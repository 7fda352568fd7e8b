"""Hostile callers of the module: sizes out of range, file objects that
keep the memory they were lent or use the image from inside its own
callbacks.  A hang or a
crash must not take the test session with it, so each case that could
runs in a child interpreter with a time limit."""
import gc
import io
import os
import subprocess
import sys
import weakref

import pytest

from conftest import MiB, qcowkit

CHILD_TIMEOUT = 60


def run_child(code, *args):
    """Run code in a fresh interpreter (same environment); its result."""
    try:
        return subprocess.run([sys.executable, "-c", code, *args],
                              capture_output=True, text=True,
                              timeout=CHILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"hung for {CHILD_TIMEOUT} s") from None


class Hoarder(io.RawIOBase):
    """Keeps a slice of every buffer readinto gets, and every write's data."""

    def __init__(self, data):
        self.inner = io.BytesIO(data)
        self.kept = []

    def seek(self, pos, whence=0):
        return self.inner.seek(pos, whence)

    def readinto(self, buf):
        self.kept.append(memoryview(buf)[:])
        return self.inner.readinto(buf)

    def write(self, data):
        self.kept.append(memoryview(data)[:])
        return self.inner.write(data)


def test_kept_read_buffer_cannot_reach_the_result(images):
    path, expected = images.get("data")
    with open(path, "rb") as f:
        hoarder = Hoarder(f.read())
    img = qcowkit.open_fileobj(hoarder)
    got = img.read(4 * MiB)
    copy = bytes(got)
    assert copy == expected[:4 * MiB]
    for view in hoarder.kept:
        if not view.readonly and len(view):
            view[:] = b"Z" * len(view)
    # A bytes object is immutable: the hoarded slices were not its memory.
    assert got == copy
    assert img.pread(4 * MiB, 0) == copy
    img.close()


def test_kept_write_buffer_is_a_copy(fresh, images):
    path, _ = fresh(images, "data")
    with open(path, "rb") as f:
        hoarder = Hoarder(f.read())
    img = qcowkit.open_fileobj(hoarder, "r+b")
    data = bytearray(b"W" * 65536)
    img.pwrite(data, 0)
    data[:] = b"X" * 65536
    written = [bytes(v) for v in hoarder.kept if len(v) == 65536]
    assert written and all(w == b"W" * 65536 for w in written)
    img.close()


REENTER = """
import io, sys, qcowkit
mode = sys.argv[2]
with open(sys.argv[1], "rb") as f:
    data = f.read()
box = {}

class Reenter(io.RawIOBase):
    def __init__(self):
        self.inner = io.BytesIO(data)
        self.armed = False
    def seek(self, pos, whence=0):
        return self.inner.seek(pos, whence)
    def readinto(self, buf):
        if self.armed:
            self.armed = False
            try:
                if mode == "close":
                    box["img"].close()
                else:
                    box["img"].pread(4096, 3 * 1048576)
                print("inner call returned")
            except qcowkit.Error as e:
                print("inner", e.errno, e)
        return self.inner.readinto(buf)

obj = Reenter()
box["img"] = img = qcowkit.open_fileobj(obj)
obj.armed = True
try:
    img.pread(4096, 1048576 + 12288)
    print("outer read returned")
except qcowkit.Error as e:
    print("outer", e.errno, e)
img.close()
print("closed")
"""


def test_image_used_from_its_own_callback_fails_not_hangs(images):
    path, _ = images.get("data")
    for mode in ("read", "close"):
        r = run_child(REENTER, path, mode)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[-1] == "closed", r.stdout
        assert any(line.startswith("inner ") and "own" in line
                   for line in lines), r.stdout


def test_out_of_range_sizes_are_refused_not_wrapped(tmp_path, images):
    path, _ = images.get("data")
    new = str(tmp_path / "new.qcow")
    # 2**32 + 512 once wrapped to 512, 2**40 to 0 (the default).
    for bad in (1 << 40, (1 << 32) + 512, -1):
        with pytest.raises(OverflowError):
            qcowkit.create(new, MiB, cluster_size=bad)
        assert not os.path.exists(new)
    for bad in (-1, -4096):
        with pytest.raises(OverflowError):
            qcowkit.open(path, cache_size=bad)
        with open(path, "rb") as f:
            with pytest.raises(OverflowError):
                qcowkit.open_fileobj(io.BytesIO(f.read()), cache_size=bad)


def test_file_object_that_refers_to_its_image_is_collected(images):
    """image -> file object -> image: a cycle the collector must see."""
    path, _ = images.get("data")
    with open(path, "rb") as f:
        data = f.read()

    class Owner(io.RawIOBase):
        def __init__(self):
            self.inner = io.BytesIO(data)
            self.image = None

        def seek(self, pos, whence=0):
            return self.inner.seek(pos, whence)

        def readinto(self, buf):
            return self.inner.readinto(buf)

    owner = Owner()
    owner.image = qcowkit.open_fileobj(owner)
    owner.image.read(4096)
    gone_owner, gone_image = weakref.ref(owner), weakref.ref(owner.image)
    del owner
    gc.collect()
    assert gone_owner() is None and gone_image() is None


class DfvfsStyle:
    """As dfvfs's file objects: seek returns None, read but no readinto."""

    def __init__(self, data):
        self.data = data
        self.offset = 0

    def seek(self, offset, whence=os.SEEK_SET):
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.offset,
                os.SEEK_END: len(self.data)}[whence]
        self.offset = base + offset

    def tell(self):
        return self.offset

    def read(self, size=None):
        end = len(self.data) if size is None else self.offset + size
        out = self.data[self.offset:end]
        self.offset += len(out)
        return out


def test_file_object_whose_seek_returns_none(images):
    path, expected = images.get("data")
    with open(path, "rb") as f:
        obj = DfvfsStyle(f.read())
    with qcowkit.open_fileobj(obj) as img:
        assert img.size == len(expected)
        assert img.read() == expected
