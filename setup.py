"""Builds the scoring core with mypyc (about 3x faster scoring); LEADSYNC_PURE_PYTHON=1 skips it.

The core is plain typed Python either way: the compiled modules behave the same
and the pure-Python source is what runs when they are absent. So a core that
does not compile (no C compiler, no Python headers) does not fail the install:
the package is built without the compiled modules, with a warning.
"""

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError

CORE = [
    "sync/core/model.py",
    "sync/core/wire.py",
    "sync/core/conditions.py",
    "sync/core/rules.py",
    "sync/core/lifecycle.py",
    "sync/core/scoring.py",
    "sync/core/accounts.py",
    "sync/core/account_planning.py",
    "sync/core/planning.py",
    "sync/core/decision.py",
    "sync/core/version.py",
    "sync/core/likelihood.py",
]

ext_modules = []
if os.environ.get("LEADSYNC_PURE_PYTHON") != "1":
    from mypyc.build import mypycify

    # The core imports no third-party code, so it compiles without the project mypy config (and its plugins).
    ext_modules = mypycify(["--config-file", os.devnull, *CORE], opt_level="3")


class CoreBuildExt(build_ext):
    """Compiles the core if the C toolchain can; otherwise warns and leaves the pure-Python core to run."""

    def run(self) -> None:
        try:
            super().run()
        except (CCompilerError, ExecError, PlatformError) as error:
            self.fall_back(error)

    def fall_back(self, error: Exception) -> None:
        for ext in self.extensions:  # nothing half-built may shadow the sources, in the build tree or in place
            filename = self.get_ext_filename(ext.name)
            for path in (os.path.join(self.build_lib, filename), filename):
                if os.path.exists(path):
                    os.remove(path)
        self.extensions = []
        self.distribution.ext_modules = []
        print(
            "\n".join(
                [
                    "",
                    "WARNING: leadsync's scoring core did not compile; installing the pure-Python core instead.",
                    f"WARNING: {type(error).__name__}: {error}",
                    "WARNING: It scores the same, a few times slower. For the compiled core, install a C compiler",
                    "WARNING: (gcc) and the Python headers, then reinstall. LEADSYNC_PURE_PYTHON=1 skips compiling.",
                    "",
                ]
            ),
            file=sys.stderr,
            flush=True,
        )


setup(ext_modules=ext_modules, cmdclass={"build_ext": CoreBuildExt})
