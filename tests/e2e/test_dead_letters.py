"""End to end through the CLI: writes HubSpot refuses become dead letters that say what to fix; later cycles
(incremental ones too) retry them from the contact's data when due, with backoff and a cap on attempts;
`leadsync dead-letters` lists, retries and drops them."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

import sync.app
import sync.store.state
from sync.cli import main
from sync.sandbox import Sandbox
from sync.sandbox.generator import DEFAULT_NOW_MS, generate_portal
from sync.store.state import SqlStateStore
from tests.factories import sandbox_config
from tests.fakes import ManualClock

TOKEN_ENV = "LEADSYNC_DL_TOKEN"
T0_MS = DEFAULT_NOW_MS + 3_600_000
MINUTE_MS = 60_000
MQL = "marketingqualifiedlead"


@dataclasses.dataclass
class World:
    sb: Sandbox
    clock: ManualClock
    config: Path
    db: str
    portal_id: int

    def cli(self, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
        """Run `leadsync ARGS --json`; the exit status and the JSON document it printed."""
        capsys.readouterr()
        extra = ["--log-format", "console", "--log-level", "error"] if args[0] == "sync" else []
        code = main([*args, "--config", str(self.config), "--db", self.db, "--json", *extra])
        out = capsys.readouterr().out
        return code, json.loads(out) if out.strip() else None

    def letters(self, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[int, dict[str, Any]]:
        code, doc = self.cli(capsys, "dead-letters", "list", *extra)
        assert code == 0
        return {d["id"]: d for d in doc["dead_letters"]}

    def set_stage_option(self, present: bool) -> None:
        """An admin removes (or adds back) the lifecycle stage leadsync writes first."""
        prop = self.sb.portal.property_def("lifecyclestage")
        assert prop is not None
        options = [o for o in prop.options if o.value != MQL]
        if present:
            options.append(next(o for o in type(self).all_stages if o.value == MQL))
        self.sb.portal.redefine_property(dataclasses.replace(prop, options=tuple(options)))

    all_stages: tuple[Any, ...] = ()

    def minutes(self, n: float) -> None:
        self.clock.ms += int(n * MINUTE_MS)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    clock = ManualClock.at_ms(T0_MS)
    with Sandbox(generate_portal(150, 8), rate_limit="off", clock=clock.seconds) as sb:
        config = sandbox_config(sb.url, TOKEN_ENV)
        config["model"]["lifecycle"]["stages"][0]["min_score"] = 20  # more contacts qualify as MQL
        file = tmp_path / "acme.yaml"
        file.write_text(yaml.safe_dump(config))
        monkeypatch.setenv(TOKEN_ENV, sb.token)
        # One clock for HubSpot, the worker and the store: backoff times are checked by moving it.
        monkeypatch.setattr(sync.app, "SystemClock", lambda: clock)
        monkeypatch.setattr(sync.store.state, "SqlStateStore", partial(SqlStateStore, clock=clock))
        prop = sb.portal.property_def("lifecyclestage")
        assert prop is not None
        World.all_stages = prop.options
        w = World(sb, clock, file, f"sqlite:///{tmp_path / 'state.db'}", int(config["portal"]["id"]))
        w.set_stage_option(present=False)
        yield w


def refused_full_sync(w: World, capsys: pytest.CaptureFixture[str]) -> dict[int, dict[str, Any]]:
    code, summary = w.cli(capsys, "sync", "--full")
    assert code == 0 and summary["status"] == "ok"
    letters = w.letters(capsys)
    assert letters and summary["dead_lettered"] == len(letters)
    return letters


def test_a_refused_option_says_what_to_fix_and_is_retried_with_backoff_until_the_cap(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    letters = refused_full_sync(world, capsys)
    first = next(iter(letters.values()))
    assert first["properties"]["lifecyclestage"] == MQL and first["status_code"] == 400
    assert first["reason"].startswith(f"HubSpot rejected lifecyclestage={MQL}: not an option of lifecyclestage")
    assert "(options: subscriber, lead, salesqualifiedlead" in first["reason"]
    assert "add the option in HubSpot or change lifecycle stages in the config" in first["reason"]
    assert {(d["state"], d["attempts"]) for d in letters.values()} == {("open", 0)}
    assert {d["next_attempt_at"] for d in letters.values()} == {"2026-11-01T13:15:00Z"}  # T0 + 15 min

    world.minutes(5)  # an incremental sync before the letters are due does not touch them
    code, summary = world.cli(capsys, "sync")
    assert code == 0 and "dead_letters_retried" not in summary
    assert world.letters(capsys) == letters

    world.minutes(11)  # due now: retried, refused again, due again 30 minutes later
    code, summary = world.cli(capsys, "sync")
    assert code == 0 and summary["dead_letters_retried"] == len(letters) and summary["dead_letters_resolved"] == 0
    again = world.letters(capsys)
    assert set(again) == set(letters)  # the same letters, counted, not new ones
    assert {(d["state"], d["attempts"], d["next_attempt_at"]) for d in again.values()} == {
        ("open", 1, "2026-11-01T13:46:00Z")
    }

    waits = [30, 60, 120, 240, 480, 960, 1440]  # minutes: twice as long each time, a day at most
    for attempt, wait in enumerate(waits, start=2):
        world.minutes(wait - 1)
        assert "dead_letters_retried" not in world.cli(capsys, "sync")[1]  # a minute early: not yet
        world.minutes(1)
        due = {i for i, d in world.letters(capsys).items() if d["state"] == "open"}
        code, summary = world.cli(capsys, "sync")
        assert code == 0 and summary["dead_letters_retried"] == len(due)
        now = world.letters(capsys, "--all")
        # Rescored as time passes, a contact may fall below the stage: its score alone is written, and it
        # needs no stage any more (resolved); the others are refused again and counted.
        refused = {i for i in due if now[i]["state"] != "resolved"}
        assert refused and summary["dead_letters_resolved"] == len(due - refused)
        assert {(now[i]["state"], now[i]["attempts"]) for i in refused} == {
            ("given_up" if attempt == 8 else "open", attempt)
        }
    world.minutes(2 * 1440)
    code, summary = world.cli(capsys, "sync")
    assert "dead_letters_retried" not in summary  # given up: retried no more (an operator may)
    assert {d["state"] for d in world.letters(capsys).values()} == {"given_up"}


def test_a_fixed_refusal_is_written_by_the_next_due_incremental_sync_with_its_history(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    letters = refused_full_sync(world, capsys)
    ids = sorted(letters)
    dropped, tried, rest = ids[0], ids[1], ids[2:]

    assert world.cli(capsys, "dead-letters", "drop", "--id", str(dropped))[0] == 0
    code, doc = world.cli(capsys, "dead-letters", "retry", "--id", str(tried))  # still refused: exit 1
    assert code == 1 and [(d["state"], d["attempts"]) for d in doc["dead_letters"]] == [("open", 1)]
    assert "not an option of lifecyclestage" in doc["dead_letters"][0]["reason"]
    assert world.cli(capsys, "dead-letters", "retry", "--id", "999999")[0] == 2  # no such letter
    assert world.cli(capsys, "dead-letters", "drop")[0] == 2  # which ones?
    assert world.cli(capsys, "dead-letters", "retry", "--id", str(dropped))[0] == 2  # dropped already
    assert set(world.letters(capsys)) == set(ids) - {dropped}

    world.set_stage_option(present=True)  # the admin adds the stage back
    world.minutes(16)  # the untried letters are due, the one retried by hand is not
    code, summary = world.cli(capsys, "sync")
    assert code == 0 and summary["dead_letters_retried"] == len(rest) == summary["dead_letters_resolved"]
    closed = world.letters(capsys, "--all")
    assert [closed[i]["state"] for i in rest] == ["resolved"] * len(rest)
    assert (closed[dropped]["state"], closed[tried]["state"]) == ("dropped", "open")

    store = SqlStateStore(world.db)
    try:
        for letter_id in rest:
            cid = closed[letter_id]["contact_id"]
            assert (world.sb.portal.contact_properties(cid) or {}).get("lifecyclestage") == MQL
            assert store.history(world.portal_id, cid)[-1].stage == MQL  # the write's audit row
    finally:
        store.close()

    code, doc = world.cli(capsys, "dead-letters", "retry", "--all")  # the one still open, by hand, now
    assert code == 0 and [(d["id"], d["state"]) for d in doc["dead_letters"]] == [(tried, "resolved")]
    assert world.letters(capsys) == {}
