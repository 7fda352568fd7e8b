#!/usr/bin/python3
"""python-read.py: read a qcow image in 1 MiB reads through qcowkit.open
and through libyal's pyqcow (read_buffer), and print the medians and the
ratio with the machine.

    bench/python-read.py                # 1 GiB, 3 runs of each, alternating
    bench/python-read.py --mib 64 --runs 1   # a quick smoke run
    PYTHONPATH=build/python bench/python-read.py

The image is bench/gen-data.pl's data (1/4 zeros, 1/4 random, 1/2 text)
converted to qcow by qemu-img.  Both readers check that they read the
same bytes (a hash of each run).  Exit 77 when qemu-img, perl, pyqcow or
the module is missing.
"""
import argparse
import hashlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CHUNK = 1 << 20


def skip(why):
    print(f"python-read: skipped: {why}")
    sys.exit(77)


def import_modules():
    build = os.path.join(HERE, "..", "build", "python")
    if os.path.isdir(build):
        sys.path.insert(0, build)
    try:
        import qcowkit
    except ImportError as e:
        skip(f"the module qcowkit does not import ({e}); build it first")
    try:
        import pyqcow
    except ImportError:
        skip("pyqcow is missing (Debian: python3-libqcow)")
    return qcowkit, pyqcow


def read_qcowkit(qcowkit, path, digest=None):
    """read(1 MiB) to the end: a new bytes object each time, as pyqcow."""
    with qcowkit.open(path) as img:
        while True:
            data = img.read(CHUNK)
            if not data:
                break
            if digest:
                digest.update(data)


def readinto_qcowkit(qcowkit, path, digest=None):
    """readinto one reused buffer: what a copying loop would do."""
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with qcowkit.open(path) as img:
        while True:
            n = img.readinto(buf)
            if not n:
                break
            if digest:
                digest.update(view[:n])


def read_pyqcow(pyqcow, path, digest=None):
    f = pyqcow.file()
    f.open(path)
    left = f.get_media_size()
    while left:
        data = f.read_buffer(min(CHUNK, left))
        if not data:
            break
        if digest:
            digest.update(data)
        left -= len(data)
    f.close()


def machine(folder):
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print("== machine")
    print(f"nproc:     {os.cpu_count()}")
    print(f"cpu:       {cpu}")
    print(f"kernel:    {platform.system()} {platform.release()}")
    print(f"python:    {sys.executable} {platform.python_version()}")
    print(f"folder:    {folder}")
    print(f"load avg:  {load} (at start)")


def make_image(folder, mib):
    raw = os.path.join(folder, "src.raw")
    img = os.path.join(folder, "src.qcow")
    with open(raw, "wb") as out:
        subprocess.run(["perl", os.path.join(HERE, "gen-data.pl"), str(mib)],
                       stdout=out, check=True)
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow", raw,
                    img], check=True)
    os.unlink(raw)
    return img


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mib", type=int, default=1024,
                    help="image size in MiB (a multiple of 4)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", default=os.environ.get("TMPDIR", "/var/tmp"))
    args = ap.parse_args()
    for tool in ("qemu-img", "perl"):
        if not shutil.which(tool):
            skip(f"{tool} is not installed")
    qcowkit, pyqcow = import_modules()
    folder = tempfile.mkdtemp(prefix="qcowkit-pybench.", dir=args.dir)
    try:
        machine(folder)
        print(f"size:      {args.mib} MiB image, 1 MiB reads, "
              f"{args.runs} run(s) each, alternating\n")
        img = make_image(folder, args.mib)
        readers = {
            "qcowkit read(1 MiB)": (read_qcowkit, qcowkit),
            "qcowkit readinto(1 MiB)": (readinto_qcowkit, qcowkit),
            "pyqcow read_buffer(1 MiB)": (read_pyqcow, pyqcow),
        }
        # One untimed run each: warms the page cache, checks the bytes.
        digests = set()
        for fn, mod in readers.values():
            h = hashlib.blake2b()
            fn(mod, img, h)
            digests.add(h.hexdigest())
        if len(digests) != 1:
            print("python-read: the readers read different bytes")
            return 1
        times = {name: [] for name in readers}
        for _ in range(args.runs):
            for name, (fn, mod) in readers.items():
                t0 = time.perf_counter()
                fn(mod, img)
                times[name].append(time.perf_counter() - t0)
        print(f"{'reader':<28}{'median s':>10}{'MiB/s':>10}")
        med = {}
        for name, ts in times.items():
            med[name] = statistics.median(ts)
            print(f"{name:<28}{med[name]:>10.3f}"
                  f"{args.mib / med[name]:>10.0f}")
        ours = med["qcowkit read(1 MiB)"]
        theirs = med["pyqcow read_buffer(1 MiB)"]
        print(f"\nratio: pyqcow read_buffer / qcowkit read = "
              f"{theirs / ours:.2f}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
