"""create, check, info and extents against the qcowkit command's JSON."""
import shutil

import pytest

from conftest import (MiB, PASSWORD, SECRET, cli_json, key_opts, qcowkit,
                      qcowkit_cli, run)

NAMES = ["data", "small-clusters", "compressed", "encrypted", "chain", "raw"]


@pytest.mark.parametrize("name", NAMES)
def test_info_same_as_cli(images, name):
    path, _ = images.get(name)
    with qcowkit.open(path) as img:
        assert img.info() == cli_json("info", "--output=json", path)


def normalise(entries):
    """(start, length, present, zero, offset) runs, neighbours merged."""
    out = []
    for start, length, present, zero, offset in entries:
        if out:
            s, n, p, z, o = out[-1]
            if (p, z) == (present, zero) and s + n == start and (
                    (o is None and offset is None) or
                    (o is not None and offset is not None and
                     o + n == offset)):
                out[-1] = (s, n + length, p, z, o)
                continue
        out.append((start, length, present, zero, offset))
    return out


@pytest.mark.parametrize("name", NAMES)
def test_extents_same_as_cli_map(images, name):
    path, data = images.get(name)
    spec = key_opts(path) if name == "encrypted" else [path]
    theirs = normalise((e["start"], e["length"], e["present"], e["zero"],
                        e.get("offset"))
                       for e in cli_json("map", "--output=json", *spec))
    with qcowkit.open(path) as img:
        raw = list(img.extents())
        ours = normalise(
            (off, n, bool(f & qcowkit.EXTENT_ALLOCATED),
             bool(f & qcowkit.EXTENT_ZERO), host)
            for off, n, f, host in raw)
        assert ours == theirs
        # Runs tile the disk, and a part of it is described alike.
        assert sum(n for _, n, _, _ in raw) == img.size
        part = list(img.extents(img.size // 3, 100000))
        assert part[0][0] == img.size // 3
        assert sum(n for _, n, _, _ in part) == 100000
        for off, n, f, host in part:
            assert (host is None) == (not f & qcowkit.EXTENT_HOST_OFFSET)


@pytest.mark.parametrize("opts,cli", [
    ({}, []),
    ({"password": PASSWORD},
     ["--object", SECRET, "-o", "encrypt.format=aes,encrypt.key-secret=sec0"]),
])
def test_create_same_file_as_qemu_img(tmp_path, opts, cli):
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    size = 5 * MiB + 7
    qcowkit.create(str(ours), size, **opts)
    fmt = opts.get("format", "qcow")
    run("qemu-img", "create", "-q", "-f", fmt, *cli, theirs, str(size))
    assert ours.read_bytes() == theirs.read_bytes()


def test_create_raw(tmp_path):
    path = tmp_path / "disk.raw"
    qcowkit.create(str(path), 5 * MiB, format="raw")
    assert path.stat().st_size == 5 * MiB
    with qcowkit.open(str(path)) as img:
        assert img.info()["format"] == "raw"
        assert img.read() == bytes(5 * MiB)


@pytest.mark.parametrize("cluster", [512, 1024, 65536])
def test_create_same_file_as_cli(tmp_path, cluster):
    """QEMU's qcow has no cluster_size option; the qcowkit command has."""
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    qcowkit.create(str(ours), 3 * MiB, cluster_size=cluster)
    run(qcowkit_cli(), "create", "-q", "-f", "qcow", "-o",
        f"cluster_size={cluster}", theirs, str(3 * MiB))
    assert ours.read_bytes() == theirs.read_bytes()
    with qcowkit.open(str(ours)) as img:
        assert img.info()["cluster-size"] == cluster


def test_create_with_backing(images, tmp_path):
    base, data = images.get("data")
    shutil.copyfile(base, tmp_path / "base.qcow")
    ours, theirs = tmp_path / "ours.qcow", tmp_path / "theirs.qcow"
    qcowkit.create(str(ours), None, backing_file="base.qcow",
                   backing_format="qcow")
    run("qemu-img", "create", "-q", "-f", "qcow", "-b", "base.qcow", "-F",
        "qcow", theirs)
    assert ours.read_bytes() == theirs.read_bytes()
    with qcowkit.open(str(ours)) as img:
        assert img.size == len(data)
        assert img.read() == data
        info = img.info()
        assert info["backing-filename"] == "base.qcow"
        assert info["full-backing-filename"] == str(tmp_path / "base.qcow")


def test_create_refusals(tmp_path):
    p = str(tmp_path / "x.qcow")
    qcowkit.create(p, MiB)
    with pytest.raises(qcowkit.Error) as e:
        qcowkit.create(p, MiB)  # exists
    assert p in str(e.value)
    with pytest.raises(qcowkit.Error) as e:
        qcowkit.create(str(tmp_path / "y.qcow"), MiB, cluster_size=1000)
    with pytest.raises(qcowkit.Error) as e:
        qcowkit.create(str(tmp_path / "z.qcow"), None,
                       backing_file="missing.qcow")
    assert e.value.errno == 2
    with pytest.raises(TypeError):
        qcowkit.create(str(tmp_path / "w.qcow"), None)


def leaky_image(tmp_path):
    p = tmp_path / "leaky.qcow"
    qcowkit.create(str(p), 4 * MiB)
    with qcowkit.open(str(p), "r+b") as img:
        img.pwrite(b"\x01" * 20000, 100000)
    with open(p, "ab") as f:
        f.write(b"\xff" * 4096 * 3)  # three clusters nothing points at
    return p


def same_as_cli(report, cli, *, same_path=True):
    for key, value in cli.items():
        if key != "filename" or same_path:
            assert report[key] == value, key
    for key, value in report.items():
        if key not in cli and key not in ("problems", "repair-refused"):
            assert value == 0, key


def test_check_same_as_cli(images, tmp_path):
    for name in ["data", "compressed", "small-clusters"]:
        path, _ = images.get(name)
        report = qcowkit.check(path)
        same_as_cli(report, cli_json("check", "--output=json", path))
        assert report["problems"] == []
    p = leaky_image(tmp_path)
    copy = tmp_path / "copy.qcow"
    shutil.copyfile(p, copy)
    report = qcowkit.check(str(p))
    assert report["leaks"] == 3
    assert len(report["problems"]) >= 1
    same_as_cli(report, run_cli_check(str(copy)), same_path=False)


def run_cli_check(path, *extra):
    import json
    import subprocess
    out = subprocess.run([qcowkit_cli(), "check", "--output=json", *extra,
                          path], capture_output=True, text=True)
    assert out.returncode in (0, 2, 3), out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("repair", ["leaks", "all"])
def test_check_repair_same_as_cli(tmp_path, repair):
    p = leaky_image(tmp_path)
    copy = tmp_path / "copy.qcow"
    shutil.copyfile(p, copy)
    report = qcowkit.check(str(p), repair=repair)
    assert report["leaks-fixed"] == 3 and report["leaks"] == 0
    same_as_cli(report, run_cli_check(str(copy), "-r", repair),
                same_path=False)
    assert p.read_bytes() == copy.read_bytes()
    assert qcowkit.check(str(p))["leaks"] == 0


def test_check_raw_and_bad_arguments(images):
    path, _ = images.get("raw")
    with pytest.raises(qcowkit.Error):
        qcowkit.check(path)
    with pytest.raises(ValueError):
        qcowkit.check(path, repair="some")
