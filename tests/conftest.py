"""Test-wide checks: the compiled scoring core must match its sources."""

from __future__ import annotations

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
    if stale:
        raise pytest.UsageError(
            f"the compiled scoring core is older than {', '.join(sorted(stale))}: "
            "rebuild it with `make venv` (or `.venv/bin/pip install -e .`)"
        )
