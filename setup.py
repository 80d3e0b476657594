"""Builds the scoring core with mypyc (about 3x faster scoring); LEADSYNC_PURE_PYTHON=1 skips it.

The core is plain typed Python either way: the compiled modules behave the same
and the pure-Python source is what runs when they are absent.
"""

import os

from setuptools import setup

CORE = [
    "sync/core/model.py",
    "sync/core/conditions.py",
    "sync/core/rules.py",
    "sync/core/lifecycle.py",
    "sync/core/scoring.py",
    "sync/core/planning.py",
    "sync/core/version.py",
]

ext_modules = []
if os.environ.get("LEADSYNC_PURE_PYTHON") != "1":
    from mypyc.build import mypycify

    # The core imports no third-party code, so it compiles without the project mypy config (and its plugins).
    ext_modules = mypycify(["--config-file", os.devnull, *CORE], opt_level="3")

setup(ext_modules=ext_modules)
