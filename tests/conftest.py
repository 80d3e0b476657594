"""Test-wide checks (the compiled scoring core must match its sources) and the shared fakes and fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import structlog

from sync.buildcheck import core_kind, stale_core_modules

# Fixtures every suite may use (the clock, PostgreSQL) live in one plugin, never imported between conftests.
pytest_plugins = ["tests.fakes"]


def pytest_configure(config: pytest.Config) -> None:
    # Log events go nowhere in tests (structlog.testing.capture_logs still sees every one).
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())
    expected = os.environ.get("LEADSYNC_EXPECT_CORE")  # "pure" or "compiled": fail on the wrong one
    if expected and core_kind() != expected:
        raise pytest.UsageError(f"expected the {expected} scoring core, found the {core_kind()} one")
    stale = stale_core_modules()
    if stale:
        raise pytest.UsageError(
            f"the compiled scoring core is older than {', '.join(stale)}: "
            "rebuild it with `make venv` (or `.venv/bin/pip install -e .`)"
        )


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """A command run in a test (or a fixture) configures logging for itself; the next test starts quiet again."""
    yield
    structlog.reset_defaults()
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())


def pytest_report_header(config: pytest.Config) -> str:
    return f"scoring core: {core_kind()}"
