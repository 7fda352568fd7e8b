"""Writes through qcowkit.open, read back by qemu-io -c 'read -P'."""
import random

import pytest

from conftest import MiB, PASSWORD, qcowkit, read_all, run


def qemu_io_reads(path, checks, *, fmt="qcow", encrypted=False):
    """checks: (offset, length, byte); qemu-io fails on any mismatch."""
    cmds = []
    for off, length, byte in checks:
        cmds += ["-c", f"read -P {byte} {off} {length}"]
    if encrypted:
        args = ["--object", f"secret,id=s,data={PASSWORD}", "--image-opts",
                f"driver=qcow,file.filename={path},encrypt.key-secret=s"]
    else:
        args = ["-f", fmt, path]
    out = run("qemu-io", "-r", *cmds, *args).decode()
    assert "Pattern verification failed" not in out, out


def disjoint_writes(seed, size, count, length):
    slots = random.Random(seed).sample(range(size // length), count)
    return [(s * length + 7 * (i % 3), length - 20, (i * 37) % 255 + 1)
            for i, s in enumerate(slots)]


@pytest.mark.parametrize("cluster", [512, 4096, 65536])
def test_writes_read_back_by_qemu_io(tmp_path, cluster):
    path = str(tmp_path / "w.qcow")
    qcowkit.create(path, 16 * MiB, cluster_size=cluster)
    writes = disjoint_writes(cluster, 16 * MiB, 40, 70000)
    with qcowkit.open(path, "r+b") as img:
        assert img.writable() and img.mode == "r+b"
        for i, (off, length, byte) in enumerate(writes):
            if i % 2:
                img.seek(off)
                assert img.write(bytes([byte]) * length) == length
                assert img.tell() == off + length
            else:
                assert img.pwrite(bytes([byte]) * length, off) == length
        img.flush()
    qemu_io_reads(path, writes)
    report = qcowkit.check(path)
    assert report["corruptions"] == 0 and report["leaks"] == 0


def test_overwrite_qemu_image_and_backing(images, fresh):
    path, data = fresh(images, "data")
    with qcowkit.open(path, "r+b") as img:
        img.seek(100)
        img.write(memoryview(bytearray(b"\x5a" * 5000)))
        img.pwrite(b"\x11" * 3000, img.size - 3000)
        with pytest.raises(qcowkit.Error) as e:
            img.pwrite(b"x" * 10, img.size - 5)
        assert path in str(e.value)
    qemu_io_reads(path, [(100, 5000, 0x5a), (len(data) - 3000, 3000, 0x11)])


def test_write_encrypted(images, fresh):
    path, data = fresh(images, "encrypted")
    with qcowkit.open(path, "r+b", password=PASSWORD) as img:
        img.pwrite(b"\x77" * 9000, 4096 * 3 + 1)
        expect = bytearray(data)
        expect[4096 * 3 + 1:4096 * 3 + 9001] = b"\x77" * 9000
        assert read_all(img) == bytes(expect)
    qemu_io_reads(path, [(4096 * 3 + 1, 9000, 0x77)], encrypted=True)


def test_write_overlay_keeps_base(images, tmp_path):
    base, _ = images.get("data")
    top = str(tmp_path / "top.qcow")
    qcowkit.create(top, None, backing_file=base, backing_format="qcow")
    with qcowkit.open(top, "r+b") as img:
        img.pwrite(b"\x42" * 4096, 8192)
    qemu_io_reads(top, [(8192, 4096, 0x42)])
    with qcowkit.open(base) as b:
        assert b.pread(4096, 8192) != b"\x42" * 4096


def test_read_only_refuses_writes(images):
    path, _ = images.get("data")
    import io
    with qcowkit.open(path) as img:
        with pytest.raises(io.UnsupportedOperation):
            img.pwrite(b"x", 0)


def test_force_share_write_refused(images, fresh):
    path, _ = fresh(images, "data")
    with pytest.raises(qcowkit.Error):
        qcowkit.open(path, "r+b", force_share=True)
