"""Run the Python module's tests with pytest; exit 77 when that cannot be.

Usage: python3 run.py TESTS-FOLDER [PYTEST-ARGS...]
"""
import os
import sys

SKIP = 77


def skip(why):
    print(f"python: skipped: {why}")
    sys.exit(SKIP)


def main():
    folder = sys.argv[1]
    sanitized = os.environ.get("QCOWKIT_SANITIZE", "none") not in ("",
                                                                   "none")
    preload = os.environ.get("QCOWKIT_PRELOAD", "")
    if sanitized and not preload:
        skip("this sanitizer build's module needs a runtime that cannot be "
             "preloaded into the interpreter (gcc's shared one can)")
    if preload and os.environ.get("LD_PRELOAD") != preload:
        # The interpreter leaks by design: no leak report.
        os.environ["LD_PRELOAD"] = preload
        opts = os.environ.get("ASAN_OPTIONS", "")
        os.environ["ASAN_OPTIONS"] = (opts + ":" if opts else "") + \
            "detect_leaks=0"
        os.execv(sys.executable, [sys.executable, *sys.argv])
    try:
        import pytest
    except ImportError:
        skip(f"pytest is missing for {sys.executable} (python3-pytest)")
    try:
        import qcowkit  # noqa: F401
    except ImportError as e:
        skip(f"the module qcowkit does not import: {e}")
    sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", folder,
                          *sys.argv[2:]]))


main()
