"""Test-wide checks: the compiled scoring core must match its sources."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parent.parent / "sync" / "core"


def pytest_configure(config: pytest.Config) -> None:
    # mypyc puts compiled modules beside the sources, and Python prefers them: an edited .py
    # with an older .so beside it would test the old code.
    stale = [
        py.name
        for py in CORE.glob("*.py")
        for so in CORE.glob(f"{py.stem}.*.so")
        if so.stat().st_mtime < py.stat().st_mtime
    ]
    expected = os.environ.get("LEADSYNC_EXPECT_CORE")  # "pure" or "compiled": fail on the wrong one
    if expected and _core_kind() != expected:
        raise pytest.UsageError(f"expected the {expected} scoring core, found the {_core_kind()} one")
    if stale:
        raise pytest.UsageError(
            f"the compiled scoring core is older than {', '.join(sorted(stale))}: "
            "rebuild it with `make venv` (or `.venv/bin/pip install -e .`)"
        )


def _core_kind() -> str:
    import sync.core.scoring

    return "pure" if sync.core.scoring.__file__.endswith(".py") else "compiled"


def pytest_report_header(config: pytest.Config) -> str:
    return f"scoring core: {_core_kind()}"
