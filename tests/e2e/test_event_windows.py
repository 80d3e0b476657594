"""End to end through `leadsync sync`: email events read a day window at a time, a checkpoint after each.

A pull stopped mid-way (SIGTERM, as the service's stop) leaves the cursor at the last complete window; the next
run re-reads at most that one window (and the lookback) and loses nothing. An offset HubSpot no longer takes
restarts its window; one that never works fails the run after a bounded number of restarts."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

import sync.app
from sync.cli import main
from sync.core.model import EmailEvent
from sync.hubspot import engagement
from sync.hubspot.shapes import email_event_key
from sync.pipeline import EVENTS_CURSOR, EVENTS_LOOKBACK_MS
from sync.sandbox import Portal, Sandbox
from sync.sandbox.records import EmailEventRecord
from sync.store.state import SqlStateStore
from tests.factories import sandbox_config
from tests.fakes import ManualClock

DAY = 86_400_000
T0 = 1_790_000_000_000
PORTAL_ID = 12345678
TOKEN_ENV = "LEADSYNC_WINDOWS_TOKEN"
DAYS, PER_DAY, PAGE = 5, 45, 20
EMAILS = [f"reader{i}@buyer.example" for i in range(9)]


def events() -> list[EmailEventRecord]:
    """45 opens a day over the five days before T0 (three pages of 20 a day)."""
    return [
        EmailEventRecord(f"e-{d}-{i:02d}", T0 - d * DAY + i * 60_000, "OPEN", EMAILS[i % 9], 501, PORTAL_ID)
        for d in range(1, DAYS + 1)
        for i in range(PER_DAY)
    ]


class Recorder:
    """Every email events query the sandbox answered: (start, end, offset, ids returned); `on_query` may act."""

    def __init__(self, portal: Portal) -> None:
        self.queries: list[tuple[int, int, str | None, list[str]]] = []
        self.on_query: Any = None
        answer = portal.email_events

        def recorded(**kwargs: Any) -> Any:
            if self.on_query is not None:
                self.on_query(kwargs)
            returned: list[str] = []
            if kwargs["limit"] != 1:  # the reader's probes (limit 1) look for the oldest event
                self.queries.append((kwargs["start"], kwargs["end"], kwargs["offset"], returned))
            body = answer(**kwargs)  # a refused offset raises: the query is recorded, with nothing returned
            returned.extend(e["id"] for e in body["events"])
            return body

        portal.email_events = recorded  # type: ignore[method-assign]

    def window_starts(self) -> list[int]:
        return sorted({q[0] for q in self.queries})


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Sandbox, Recorder, Path, str]]:
    clock = ManualClock.at_ms(T0)
    monkeypatch.setattr(sync.app, "SystemClock", lambda: clock)
    monkeypatch.setattr(engagement, "EVENTS_PAGE", PAGE)
    portal = Portal(PORTAL_ID)
    portal.bulk_load([], [], events())
    portal.set_list(42, "Exclusion list", {})  # the reference config's exclusion list
    recorder = Recorder(portal)
    with Sandbox(portal, rate_limit="off", clock=clock.seconds) as sb:
        monkeypatch.setenv(TOKEN_ENV, sb.token)
        file = tmp_path / "acme.yaml"
        file.write_text(yaml.safe_dump(sandbox_config(sb.url, TOKEN_ENV)))
        yield sb, recorder, file, f"sqlite:///{tmp_path / 'state.db'}"


def sync_once(file: Path, db: str) -> int:
    return main(["sync", "--config", str(file), "--db", db, "--log-level", "error"])


def event_calls(sb: Sandbox) -> int:
    stats = requests.get(f"{sb.url}/__sandbox/stats", timeout=10).json()
    return sum(n for route, by in stats["requests"].items() if "/email/" in route for n in by.values())


def stored(db: str) -> tuple[set[str], str | None]:
    store = SqlStateStore(db)
    try:
        found = store.events_for_emails(PORTAL_ID, EMAILS)
        return {e.event_id for es in found.values() for e in es if isinstance(e, EmailEvent)}, store.get_cursor(
            PORTAL_ID, EVENTS_CURSOR
        )
    finally:
        store.close()


def test_a_pull_stopped_mid_window_resumes_from_the_last_complete_window_and_loses_nothing(world: Any) -> None:
    sb, recorder, file, db = world
    everything = {email_event_key(e.id, e.created) for e in events()}

    def stop_in_the_third_window(query: dict[str, Any]) -> None:
        if query["offset"] and len(recorder.window_starts()) == 3 and recorder.on_query is not None:
            recorder.on_query = None
            os.kill(os.getpid(), signal.SIGTERM)  # the service's stop, mid-window

    recorder.on_query = stop_in_the_third_window
    assert sync_once(file, db) == 143
    first_run = list(recorder.queries)
    starts = recorder.window_starts()
    second_window_end = next(end for start, end, _, _ in first_run if start == starts[1])
    _, cursor = stored(db)
    assert cursor == str(second_window_end)  # the last complete window's end, not the run's start

    recorder.queries.clear()
    requests.post(f"{sb.url}/__sandbox/reset_stats", timeout=10)
    assert sync_once(file, db) == 0
    calls = event_calls(sb)
    ids, cursor = stored(db)
    assert ids == everything  # nothing lost
    assert cursor == str(T0)
    # The next run starts at the checkpoint less the lookback, and what it reads again is at most the window that
    # was cut short (and the lookback before it).
    assert recorder.queries[0][0] == second_window_end - EVENTS_LOOKBACK_MS
    read_before = {i for *_, ids_ in first_run for i in ids_}
    again = {i for *_, ids_ in recorder.queries for i in ids_} & read_before
    by_id = {e.id: e.created for e in events()}
    assert again and all(second_window_end - EVENTS_LOOKBACK_MS <= by_id[i] < second_window_end + DAY for i in again)
    # Three days were left, about three pages each, plus the window cut short: a handful of calls, no re-pull.
    print(f"event calls after the stop: {calls}; events read again: {len(again)} of {len(everything)}")
    assert calls == len(recorder.queries) <= 4 * 3 + 1


def test_expired_offsets_mid_window_are_recovered(world: Any) -> None:
    sb, _, file, db = world
    requests.post(f"{sb.url}/__sandbox/faults", json={"spec": "offset=0.4", "seed": 3}, timeout=10)
    assert sync_once(file, db) == 0
    ids, cursor = stored(db)
    assert ids == {email_event_key(e.id, e.created) for e in events()}
    assert cursor == str(T0)
    assert requests.get(f"{sb.url}/__sandbox/stats", timeout=10).json()["faults"]["offset"] > 0


def test_offsets_that_never_work_fail_the_run_boundedly_and_keep_the_last_checkpoint(world: Any) -> None:
    sb, recorder, file, db = world
    requests.post(f"{sb.url}/__sandbox/faults", json={"spec": "offset=1"}, timeout=10)
    assert sync_once(file, db) == 1
    ids, cursor = stored(db)
    # The first window never gets past its first page: its restarts are bounded, nothing after it is read, and the
    # cursor sits before it (the reader skipped the empty decades before the oldest event and checkpointed that).
    assert len(recorder.queries) == 2 * (1 + engagement.OFFSET_RESTARTS)
    assert cursor is not None and int(cursor) < min(e.created for e in events())
    assert len(ids) == PAGE
    store = SqlStateStore(db)
    try:
        run = store.last_runs(PORTAL_ID, 1)[0]
    finally:
        store.close()
    assert run.status == "failed"
    assert "could not page the email events of 2026-09-" in (run.error or "")
    assert "refused the offset 4 times in a row" in (run.error or "")
