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
    if os.environ.get("QCOWKIT_SANITIZE", "none") not in ("", "none"):
        skip("a sanitizer build's module needs its runtime preloaded "
             "into the interpreter")
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
