"""End to end through `leadsync sync`: the daily API budget counts by the portal's local date (HubSpot resets it at
midnight in the portal's time zone, which `/account-info/v3/details` gives), not by UTC's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

import sync.app
from sync.cli import main
from sync.hubspot.limits import Budget, RateLimiter
from sync.sandbox import Portal, Sandbox
from sync.store.state import SqlStateStore
from tests.factories import sandbox_config
from tests.fakes import ManualClock

PORTAL_ID = 12345678
TOKEN_ENV = "LEADSYNC_BUDGET_DAY_TOKEN"
AUCKLAND = ZoneInfo("Pacific/Auckland")
# 23:30 and 00:30 in Auckland (UTC+13 in January): 10:30 and 11:30 on the same UTC day.
LATE = datetime(2027, 1, 14, 23, 30, tzinfo=AUCKLAND)
EARLY = datetime(2027, 1, 15, 0, 30, tzinfo=AUCKLAND)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Sandbox, ManualClock, Path, str]]:
    clock = ManualClock.at_ms(int(LATE.timestamp() * 1000))
    monkeypatch.setattr(sync.app, "SystemClock", lambda: clock)
    portal = Portal(PORTAL_ID, time_zone="Pacific/Auckland")
    portal.set_list(42, "Exclusion list", {})
    with Sandbox(portal, rate_limit="off", clock=clock.seconds) as sb:
        monkeypatch.setenv(TOKEN_ENV, sb.token)
        file = tmp_path / "acme.yaml"
        file.write_text(yaml.safe_dump(sandbox_config(sb.url, TOKEN_ENV)))
        yield sb, clock, file, f"sqlite:///{tmp_path / 'state.db'}"


def sync_once(file: Path, db: str) -> int:
    return main(["sync", "--config", str(file), "--db", db, "--log-level", "error"])


def used(db: str, day: str) -> int:
    store = SqlStateStore(db)
    try:
        return store.add_api_calls(PORTAL_ID, day, 0)
    finally:
        store.close()


def test_calls_either_side_of_the_portals_midnight_count_on_two_budget_days(world: Any) -> None:
    _, clock, file, db = world
    assert LATE.astimezone(UTC).date() == EARLY.astimezone(UTC).date()  # one UTC day
    assert sync_once(file, db) == 0
    late_calls = used(db, "2027-01-14")
    assert late_calls > 0
    clock.ms = int(EARLY.timestamp() * 1000)
    assert sync_once(file, db) == 0
    # By UTC both runs are on the 14th; by the portal's day the second one starts a new budget.
    assert used(db, "2027-01-14") == late_calls
    assert used(db, "2027-01-15") > 0


def budget_of(file: Path, daily: int) -> None:
    config = yaml.safe_load(file.read_text())
    config["portal"]["rate_limit"] = {"per_10s": 100_000, "daily": daily, "daily_reserve_pct": 0}
    file.write_text(yaml.safe_dump(config))


def test_the_limiter_starts_from_what_the_portals_day_has_used(world: Any) -> None:
    _, clock, file, db = world
    clock.ms = int(EARLY.timestamp() * 1000)  # 00:30 on the 15th in Auckland, still the 14th in UTC
    store = SqlStateStore(db)
    try:
        store.add_api_calls(PORTAL_ID, "2027-01-14", 55)  # yesterday in Auckland: spent, but HubSpot has reset
    finally:
        store.close()
    budget_of(file, 60)  # with no reserve: 55 used would leave too few calls for a run
    assert sync_once(file, db) == 0
    assert 0 < used(db, "2027-01-15") < 60

    store = SqlStateStore(db)
    try:
        store.add_api_calls(PORTAL_ID, "2027-01-15", 60 - used(db, "2027-01-15") - 3)  # 3 calls left today
    finally:
        store.close()
    assert sync_once(file, db) == 1
    store = SqlStateStore(db)
    try:
        runs = store.last_runs(PORTAL_ID, 2)  # both started at the same (pinned) moment
    finally:
        store.close()
    assert [r.status for r in runs if "daily budget used up" in (r.error or "")] == ["failed"]
    assert used(db, "2027-01-15") == 60  # it stopped at the budget, counted on the portal's day


def test_an_unknown_time_zone_falls_back_to_utc_with_a_warning(world: Any, capsys: pytest.CaptureFixture[str]) -> None:
    sb, _, file, db = world
    sb.portal.time_zone = "Mars/Olympus_Mons"
    world[1].ms = int(EARLY.timestamp() * 1000)  # the 15th in Auckland, the 14th in UTC
    args = ["sync", "--config", str(file), "--db", db, "--log-level", "warning", "--log-format", "json"]
    assert main(args) == 0
    out = capsys.readouterr()
    logged = [json.loads(line) for line in (out.out + out.err).splitlines() if line.startswith("{")]
    assert any(e["event"] == "unknown_time_zone" and e["time_zone"] == "Mars/Olympus_Mons" for e in logged)
    assert used(db, "2027-01-14") > 0
    assert used(db, "2027-01-15") == 0


def test_the_limiter_resets_at_the_day_it_is_told_to_count_by() -> None:
    day = ["2027-01-14"]
    limiter = RateLimiter(Budget(per_10s=1000, daily=10, daily_reserve_pct=0), sleep=lambda s: None)
    limiter.count_by(lambda: day[0], used_today=9)
    limiter.acquire()
    assert limiter.daily_used == 10
    day[0] = "2027-01-15"  # the portal's midnight
    limiter.acquire()
    assert limiter.daily_used == 1
