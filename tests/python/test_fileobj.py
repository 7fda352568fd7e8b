"""qcowkit.open_fileobj over io.BytesIO, short reads, failing objects."""
import io
import random

import pytest

from conftest import MiB, PASSWORD, qcowkit, read_all


class ShortReads(io.RawIOBase):
    """A file object whose readinto gives at most 1..777 bytes at a time."""

    def __init__(self, data):
        self.inner = io.BytesIO(data)
        self.rnd = random.Random(9)
        self.calls = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, pos, whence=0):
        return self.inner.seek(pos, whence)

    def readinto(self, buf):
        self.calls += 1
        n = min(len(buf), self.rnd.randrange(1, 778))
        return self.inner.readinto(memoryview(buf)[:n])


class ReadOnlyMethod:
    """Only read() and seek(): no readinto."""

    def __init__(self, data):
        self.inner = io.BytesIO(data)

    def seek(self, pos, whence=0):
        return self.inner.seek(pos, whence)

    def read(self, n):
        return self.inner.read(min(n, 1000))


def file_bytes(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.mark.parametrize("name", ["data", "compressed", "encrypted", "raw"])
def test_bytesio(images, name):
    path, data = images.get(name)
    kw = {"password": PASSWORD} if name == "encrypted" else {}
    with qcowkit.open_fileobj(io.BytesIO(file_bytes(path)), **kw) as img:
        assert isinstance(img, io.RawIOBase)
        assert img.name == "<fileobj>"
        assert read_all(img, 300000) == data
        info = img.info()
        assert info["filename"] == "<fileobj>"
        assert "actual-size" not in info


@pytest.mark.parametrize("cls", [ShortReads, ReadOnlyMethod])
def test_short_reads(images, cls):
    path, data = images.get("compressed")
    obj = cls(file_bytes(path))
    with qcowkit.open_fileobj(obj, name="short.qcow") as img:
        assert img.name == "short.qcow"
        assert read_all(img, 1 << 20) == data
        assert img.pread(5000, 12345) == data[12345:17345]
    if cls is ShortReads:
        assert obj.calls > 100


def test_real_file_and_nested_image(images, tmp_path):
    """An image inside the guest disk of another image."""
    inner_path, inner_data = images.get("data")
    outer = str(tmp_path / "outer.qcow")
    blob = file_bytes(inner_path)
    qcowkit.create(outer, 16 * MiB)
    with qcowkit.open(outer, "r+b") as o:
        o.pwrite(blob, MiB)
    with open(inner_path, "rb") as f:
        with qcowkit.open_fileobj(f) as img:
            assert img.name == inner_path
            assert read_all(img, 1 << 20) == inner_data
    with qcowkit.open(outer) as o:
        window = io.BufferedReader(o)
        o.seek(MiB)
        # The guest disk of outer from 1 MiB on holds inner's file.
        sub = io.BytesIO(o.read(len(blob)))
        with qcowkit.open_fileobj(sub) as img:
            assert read_all(img) == inner_data
        del window


def test_write_through_bytesio(tmp_path):
    path = str(tmp_path / "w.qcow")
    qcowkit.create(path, 4 * MiB)
    bio = io.BytesIO(file_bytes(path))
    with qcowkit.open_fileobj(bio, "r+b") as img:
        img.pwrite(b"\x33" * 10000, 50000)
        img.seek(3 * MiB)
        img.write(b"\x44" * 5000)
    with open(path, "wb") as f:
        f.write(bio.getvalue())
    with qcowkit.open(path) as img:
        assert img.pread(10000, 50000) == b"\x33" * 10000
        assert img.pread(5000, 3 * MiB) == b"\x44" * 5000
        assert img.pread(100, 0) == bytes(100)


class Failing(io.BytesIO):
    """Raises from readinto once armed."""

    armed = False

    def readinto(self, buf):
        if self.armed:
            raise RuntimeError("the archive is damaged")
        return super().readinto(buf)


def test_exception_in_callback_becomes_error(images):
    path, _ = images.get("data")
    obj = Failing(file_bytes(path))
    img = qcowkit.open_fileobj(obj, name="failing.qcow")
    obj.armed = True
    with pytest.raises(qcowkit.Error) as e:
        img.pread(4096, 0)
    err = e.value
    assert err.errno == 5  # EIO
    assert "failing.qcow" in str(err)
    assert "RuntimeError: the archive is damaged" in str(err)
    assert isinstance(err.__cause__, RuntimeError)
    obj.armed = False
    assert len(img.pread(4096, 0)) == 4096
    img.close()


def test_not_a_file_object():
    with pytest.raises(qcowkit.Error) as e:
        qcowkit.open_fileobj(object())
    assert e.value.errno == 5
    assert isinstance(e.value.__cause__, AttributeError)


def test_readinto_returning_none():
    class NonBlocking(io.BytesIO):
        def readinto(self, buf):
            return None
    with pytest.raises(qcowkit.Error) as e:
        qcowkit.open_fileobj(NonBlocking(b"x" * 4096))
    assert "readinto" in str(e.value)
