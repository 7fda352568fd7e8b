"""Shared fixtures of the qcowkit module's tests.

The reference images are made by QEMU (qemu-img, qemu-io) once per session,
each with its expected guest bytes from `qemu-img convert -O raw`.
"""
import json
import os
import random
import shutil
import subprocess

import pytest

import qcowkit

PASSWORD = "correct-horse"
SECRET = f"secret,id=sec0,data={PASSWORD}"
MiB = 1 << 20


def need(*commands):
    for c in commands:
        if shutil.which(c) is None:
            pytest.skip(f"{c} is not installed")


def run(*args, **kw):
    """Run a command; fail the test with its stderr if it fails."""
    r = subprocess.run([str(a) for a in args], capture_output=True, **kw)
    # QEMU 7.2 exits 1 without a word after a good `convert -c -O qcow`.
    quiet_convert_c = (r.returncode == 1 and not r.stderr and
                       args[:3] == ("qemu-img", "convert", "-c"))
    if r.returncode != 0 and not quiet_convert_c:
        pytest.fail(f"{' '.join(map(str, args))}: exit {r.returncode}: "
                    f"{r.stderr.decode(errors='replace')}")
    return r.stdout


def qcowkit_cli():
    cli = os.environ.get("QCOWKIT")
    if not cli or not os.access(cli, os.X_OK):
        pytest.skip("the qcowkit command is not built ($QCOWKIT)")
    return cli


def cli_json(*args):
    return json.loads(run(qcowkit_cli(), *args))


def qemu_write(image, writes, *, encrypted=False, fmt="qcow"):
    """writes: (offset, length, byte) triples, written by qemu-io."""
    cmds = []
    for off, length, byte in writes:
        cmds += ["-c", f"write -P {byte} {off} {length}"]
    if encrypted:
        run("qemu-io", "-t", "unsafe", "--object", SECRET, "--image-opts",
            f"driver=qcow,file.filename={image},encrypt.key-secret=sec0",
            *cmds)
    else:
        run("qemu-io", "-t", "unsafe", "-f", fmt, *cmds, image)


def to_raw(image, out, *, encrypted=False):
    if encrypted:
        run("qemu-img", "convert", "--object", SECRET, "--image-opts",
            f"driver=qcow,file.filename={image},encrypt.key-secret=sec0",
            "-O", "raw", out)
    else:
        run("qemu-img", "convert", "-O", "raw", image, out)
    with open(out, "rb") as f:
        return f.read()


class Images:
    """The session's reference images: name -> (path, expected bytes)."""

    def __init__(self, folder):
        self.folder = folder
        self.made = {}

    def path(self, name):
        return os.path.join(self.folder, name)

    def get(self, name):
        if name not in self.made:
            self.made[name] = getattr(self, "make_" + name.replace("-", "_"))()
        return self.made[name]

    @staticmethod
    def scattered(seed, size, count, maxlen):
        rnd = random.Random(seed)
        out = []
        for _ in range(count):
            length = rnd.randrange(1, maxlen)
            off = rnd.randrange(0, size - length)
            out.append((off, length, rnd.randrange(1, 256)))
        return out

    def make_data(self):
        p = self.path("data.qcow")
        run("qemu-img", "create", "-f", "qcow", p, str(8 * MiB + 1000))
        qemu_write(p, self.scattered(1, 8 * MiB, 40, 200000))
        return p, to_raw(p, p + ".raw")

    def make_small_clusters(self):
        p = self.path("c512.qcow")
        # QEMU's qcow has no cluster_size option: the qcowkit command makes
        # it (tests/cli checks its files against qemu-img's).
        run(qcowkit_cli(), "create", "-q", "-f", "qcow", "-o",
            "cluster_size=512", p, str(3 * MiB))
        qemu_write(p, self.scattered(2, 3 * MiB, 30, 50000))
        return p, to_raw(p, p + ".raw")

    def make_compressed(self):
        src = self.path("text.raw")
        rnd = random.Random(3)
        words = [b"qcow", b"cluster", b"table", b"guest", b"disk", b" ", b"\n"]
        with open(src, "wb") as f:
            for i in range(6):
                block = b"".join(rnd.choice(words) for _ in range(60000))
                f.write(block[:MiB] if i % 2 == 0 else bytes(MiB))
        p = self.path("compressed.qcow")
        run("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow", src, p)
        return p, to_raw(p, p + ".raw")

    def make_encrypted(self):
        p = self.path("encrypted.qcow")
        run("qemu-img", "create", "--object", SECRET, "-f", "qcow", "-o",
            "encrypt.format=aes,encrypt.key-secret=sec0", p, str(4 * MiB))
        qemu_write(p, self.scattered(4, 4 * MiB, 20, 100000), encrypted=True)
        return p, to_raw(p, p + ".raw", encrypted=True)

    def make_chain(self):
        base = self.path("base.qcow")
        top = self.path("top.qcow")
        run("qemu-img", "create", "-f", "qcow", base, str(4 * MiB))
        qemu_write(base, self.scattered(5, 4 * MiB, 20, 100000))
        run("qemu-img", "create", "-f", "qcow", "-b", "base.qcow", "-F",
            "qcow", top)
        qemu_write(top, self.scattered(6, 4 * MiB, 15, 60000))
        return top, to_raw(top, top + ".raw")

    def make_chain_base(self):
        self.get("chain")
        base = self.path("base.qcow")
        return base, to_raw(base, base + ".raw")

    def make_raw(self):
        p = self.path("plain.raw")
        with open(p, "wb") as f:
            f.write(random.Random(7).randbytes(MiB + 300))
        with open(p, "rb") as f:
            return p, f.read()


@pytest.fixture(scope="session")
def images(tmp_path_factory):
    need("qemu-img", "qemu-io")
    return Images(str(tmp_path_factory.mktemp("images")))


@pytest.fixture
def fresh(tmp_path):
    """A fresh copy of a reference image: fresh(images, name) -> path."""
    def copy(images, name):
        src, data = images.get(name)
        dst = tmp_path / os.path.basename(src)
        shutil.copyfile(src, dst)
        return str(dst), data
    return copy


def read_all(img, chunk=65536):
    parts = []
    while True:
        b = img.read(chunk)
        if not b:
            return b"".join(parts)
        parts.append(b)


def key_opts(path):
    """The qcowkit/qemu-img arguments that open an encrypted image."""
    return ["--object", SECRET, "--image-opts",
            f"driver=qcow,file.filename={path},encrypt.key-secret=sec0"]


__all__ = ["qcowkit", "need", "run", "cli_json", "qemu_write", "read_all",
           "PASSWORD", "MiB"]
