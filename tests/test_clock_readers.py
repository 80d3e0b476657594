"""The shell's clock readers take a Clock: a test sets the time they see; without one they read the system's."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sync.cli.common import _now
from sync.ports import StateStore
from sync.sandbox import Sandbox
from sync.scheduler import Service
from tests.fakes import ManualClock
from tests.sandbox.support import build_portal

AT = datetime(2026, 11, 29, 2, 34, tzinfo=UTC)


def _no_portal(file: Path, store: StateStore) -> Any:
    raise AssertionError("no portal file is read")


def test_health_reports_the_services_clock(tmp_path: Path) -> None:
    service = Service(tmp_path, cast(StateStore, None), _no_portal, clock=ManualClock(AT))
    assert service.health()["time"] == AT.timestamp()


def test_without_now_a_command_scores_as_of_the_clock() -> None:
    assert _now(None, ManualClock(AT)) == AT
    assert _now("2026-11-01", ManualClock(AT)) == datetime(2026, 11, 1, tzinfo=UTC)


def test_without_a_clock_the_shell_reads_the_system_clock(tmp_path: Path) -> None:
    before = time.time()
    with Sandbox(build_portal(), rate_limit="off") as sandbox:
        sandbox_ms = sandbox.now_ms()
    now = _now(None)
    healthz = Service(tmp_path, cast(StateStore, None), _no_portal).health()["time"]
    after = time.time()
    assert before * 1000 - 1 <= sandbox_ms <= after * 1000
    assert before <= now.timestamp() <= after
    assert now.tzinfo is not None
    assert before <= healthz <= after
