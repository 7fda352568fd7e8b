"""Bad images raise qcowkit.Error with the library's message, never crash."""
import os
import struct
import subprocess
import sys

import pytest

from conftest import qcowkit, qcowkit_cli

MAGIC = b"QFI\xfb"


def header(size=1 << 20, cluster_bits=12, l2_bits=9, crypt=0, l1_offset=48,
           backing_offset=0, backing_size=0, version=1):
    return (MAGIC + struct.pack(">IQIIQBBHIQ", version, backing_offset,
                                backing_size, 0, size, cluster_bits, l2_bits,
                                0, crypt, l1_offset))


# name -> file contents
BAD = {
    "empty": b"",
    "truncated-header": header()[:30],
    "cluster-bits": header(cluster_bits=17) + bytes(4096),
    "huge-l1": header(size=1 << 62, cluster_bits=9, l2_bits=9) + bytes(512),
    "l1-past-end": header(l1_offset=1 << 40) + bytes(4096),
    "version": header(version=2) + bytes(4096),
    "backing-name-past-end": header(backing_offset=48, backing_size=1000),
    "garbage-magic": MAGIC + os.urandom(4000),
}


@pytest.fixture
def bad_image(tmp_path):
    def make(name):
        p = tmp_path / f"{name}.qcow"
        p.write_bytes(BAD[name])
        return str(p)
    return make


def cli_message(path):
    """The library's message as the CLI prints it for info."""
    r = subprocess.run([qcowkit_cli(), "info", "-f", "qcow", path],
                       capture_output=True, text=True)
    assert r.returncode != 0
    return r.stderr


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_image_raises_error(bad_image, name):
    path = bad_image(name)
    try:
        with qcowkit.open(path, format="qcow") as img:
            # Some damage shows only when the tables are read.
            img.read()
            list(img.extents())
    except qcowkit.Error as e:
        assert isinstance(e, OSError)
        assert e.errno and e.errno > 0
        assert path in e.strerror
        assert "\n" not in e.strerror
        if os.environ.get("QCOWKIT"):
            assert e.strerror in cli_message(path)
    else:
        pytest.fail(f"{name}: no error")


CHILD = r"""
import sys, qcowkit
for path in sys.argv[1:]:
    for fmt in (None, "qcow"):
        try:
            with qcowkit.open(path, format=fmt) as img:
                img.info()
                while img.read(1 << 20):
                    pass
                for e in img.extents():
                    pass
        except qcowkit.Error as e:
            print(path, e.errno, e.strerror)
        try:
            qcowkit.check(path)
        except qcowkit.Error as e:
            print(path, e.errno, e.strerror)
        try:
            with open(path, "rb") as f:
                with qcowkit.open_fileobj(f, format=fmt) as img:
                    img.read()
        except qcowkit.Error as e:
            print(path, e.errno, e.strerror)
print("done")
"""


def test_bad_images_in_a_subprocess(bad_image):
    paths = [bad_image(name) for name in sorted(BAD)]
    r = subprocess.run([sys.executable, "-c", CHILD, *paths],
                       capture_output=True, text=True, timeout=120,
                       env=os.environ)
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith("done\n")
