"""What `meson install` and `pip install .` put in place works."""
import glob
import os
import subprocess
import sys

import pytest

from conftest import run

CHILD = """
import sys, qcowkit
assert qcowkit.__file__.startswith(sys.argv[1]), qcowkit.__file__
with qcowkit.open(sys.argv[2]) as img:
    assert img.read() == open(sys.argv[3], "rb").read()
print("ok")
"""


def run_child(site, images, env):
    path, data = images.get("compressed")
    env = {**os.environ, **env, "PYTHONPATH": site}
    r = subprocess.run([sys.executable, "-c", CHILD, site, path,
                        path + ".raw"], capture_output=True, text=True,
                       env=env, cwd="/")
    assert r.stdout == "ok\n", r.stderr


def test_meson_install(tmp_path, images):
    meson = os.environ.get("QCOWKIT_MESON")
    build = os.environ.get("QCOWKIT_BUILD_ROOT")
    if not meson or not build:
        pytest.skip("not run by meson test ($QCOWKIT_MESON)")
    dest = tmp_path / "dest"
    run(meson, "install", "-C", build, "--no-rebuild", "--quiet",
        "--destdir", dest, "--tags", "runtime,python-runtime")
    modules = glob.glob(f"{dest}/**/qcowkit.*.so", recursive=True)
    assert len(modules) == 1, modules
    libs = glob.glob(f"{dest}/**/libqcowkit.so.0", recursive=True)
    assert len(libs) == 1, libs
    run_child(os.path.dirname(modules[0]), images,
              {"LD_LIBRARY_PATH": os.path.dirname(libs[0])})


def test_pip_install(tmp_path, images):
    source = os.environ.get("QCOWKIT_SOURCE_ROOT")
    if not source:
        pytest.skip("not run by meson test ($QCOWKIT_SOURCE_ROOT)")
    for module in ("pip", "mesonpy"):
        r = subprocess.run([sys.executable, "-c", f"import {module}"],
                           capture_output=True)
        if r.returncode:
            pytest.skip(f"{module} is missing for {sys.executable}")
    target = tmp_path / "site"
    run(sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
        "--no-build-isolation", "--no-index", "--target", target, source,
        timeout=600)
    modules = glob.glob(f"{target}/qcowkit.*.so")
    assert len(modules) == 1, os.listdir(target)
    # The wheel holds the module alone, with the library linked in.
    assert not glob.glob(f"{target}/**/libqcowkit*", recursive=True)
    assert not glob.glob(f"{target}/bin/*")
    run_child(str(target), images, {})
