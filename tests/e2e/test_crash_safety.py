"""Crash safety: a 20,000-contact backfill SIGKILLed again and again ends exactly where an uninterrupted one does.

Two sandboxes from one seed, each a subprocess. One gets a clean `leadsync sync --full`; the other gets the
same command killed with SIGKILL at seeded points spread over its backfill, restarted with `--full` each time
until a run ends ok with nothing pending. Then the two portals must hold the same values, no write may be
missing, and every `score_changed` event must match a write the crashed sandbox received.

Both workers run with their clock pinned (see tests/e2e/crashkit.py): on the wall clock a backfill that
stops and resumes minutes later scores its pages as of different moments, and its reasons differ from the
clean run's for reasons that have nothing to do with crashes.
"""

from __future__ import annotations

import itertools
import random
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from sync.pipeline import BACKFILL_CURSOR, BATCH, CONTACTS_CURSOR
from sync.store import schema
from sync.store.state import SqlStateStore
from tests.e2e.crashkit import KillRule, SandboxProcess, WorkerRun, run_worker
from tests.factories import EXAMPLE

CONTACTS = 20_000
SEED = 20_261_101  # the sandboxes' data and the kill plan
TOKEN = "crash-safety-token"
TOKEN_ENV = "LEADSYNC_CRASH_TOKEN"
PINNED_NOW = "2026-11-01T13:00:00+00:00"  # an hour after the generator's "now"
COMPARED = ("ls_score", "ls_fit", "ls_engagement", "ls_grade", "ls_reasons", "lifecyclestage")  # not ls_scored_at
KILLS_AT_START = 2  # during the first runs' event pull: before any write
PROGRESS_KILLS = 11  # one in each of 11 equal slices of the backfill's writes...
OUTBOX_KILLS = 4  # ...of which these land while a batch is in the outbox: recorded, not yet completed
RESUME_KILLS = 3  # the run after a kill that left the outbox full is killed while it sends it again
EXPECTED_WRITES = CONTACTS * 9 // 10  # the clean run writes about 91% of the contacts; kill targets are fractions
SANDBOX_START_S = 120.0
CLEAN_RUN_S = 300.0
CRASHED_RUN_S = 120.0


@dataclass
class PlannedKill:
    reason: str
    delay_s: float = 0.0
    target: int | None = None  # armed once this many score_changed events were logged, over all runs
    in_outbox: bool = False  # once armed, kill as soon as the outbox holds a batch

    def rule(self, logged_before: int, outbox: OutboxWatch) -> KillRule:
        if self.target is None:
            return KillRule(self.reason, self.delay_s)  # `delay_s` after run_started
        seen = [logged_before]
        target = self.target

        def reached(event: dict[str, Any]) -> bool:
            seen[0] += event.get("event") == "score_changed"
            return seen[0] >= target

        return KillRule(self.reason, self.delay_s, reached, outbox.has_rows if self.in_outbox else None)


class OutboxWatch:
    """Reads a running worker's SQLite store (WAL: a reader never blocks the writer): is a batch in the outbox?"""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.conn: sqlite3.Connection | None = None

    def has_rows(self) -> bool:
        try:
            if self.conn is None:
                self.conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=1)
            return self.conn.execute(f"SELECT 1 FROM {schema.outbox.name} LIMIT 1").fetchone() is not None
        except sqlite3.Error:
            return False

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@dataclass
class Kill:
    run: WorkerRun
    writes_applied: int  # the crashed sandbox's applied writes right after the kill
    pending: int  # outbox rows the killed run left
    resumed: bool  # a resume kill: the run was killed while it sent a killed run's outbox again


@pytest.fixture
def sandboxes(tmp_path: Path) -> Iterator[tuple[SandboxProcess, SandboxProcess]]:
    clean = crashed = None
    try:
        clean = SandboxProcess(CONTACTS, SEED, TOKEN, tmp_path, "sandbox-clean")
        crashed = SandboxProcess(CONTACTS, SEED, TOKEN, tmp_path, "sandbox-crashed")
        clean.wait_ready(SANDBOX_START_S)
        crashed.wait_ready(SANDBOX_START_S)
        yield clean, crashed
    finally:
        for sandbox in (clean, crashed):
            if sandbox is not None:
                sandbox.stop()


def portal_file(tmp_path: Path, name: str, url: str) -> Path:
    config = yaml.safe_load(EXAMPLE.read_text())
    config["portal"].update(base_url=url, token_env=TOKEN_ENV)
    config["portal"]["rate_limit"] = {"per_10s": 100_000, "daily": 100_000_000, "search_per_second": 10_000}
    file = tmp_path / f"{name}.yaml"
    file.write_text(yaml.safe_dump(config))
    return file


def sync_command(config: Path, db: Path) -> list[str]:
    """`python -m sync sync --config C --full --db D --log-format json`, through the clock-pinning shim."""
    leadsync = [sys.executable, "-m", "tests.e2e.crashkit", PINNED_NOW]
    return [*leadsync, "sync", "--config", str(config), "--full", "--db", f"sqlite:///{db}", "--log-format", "json"]


def kill_plan(rng: random.Random) -> list[PlannedKill]:
    """Seeded kill points: two before any write, then one in each of PROGRESS_KILLS equal slices of the backfill
    (by score_changed events logged over all runs), OUTBOX_KILLS of them while a batch sits in the outbox."""
    plan = [
        PlannedKill("first run, pulling events", rng.uniform(0.05, 0.5)),
        PlannedKill("second run, pulling events", rng.uniform(0.5, 2.5)),
    ]
    assert len(plan) == KILLS_AT_START
    in_outbox = set(rng.sample(range(PROGRESS_KILLS), OUTBOX_KILLS))
    low, width = 0.04, 0.92 / PROGRESS_KILLS
    for i in range(PROGRESS_KILLS):
        target = int(EXPECTED_WRITES * rng.uniform(low + i * width, low + (i + 1) * width))
        if i in in_outbox:
            plan.append(PlannedKill(f"{target} changed, batch in the outbox", target=target, in_outbox=True))
        else:
            delay = rng.uniform(0.0, 0.25)
            plan.append(PlannedKill(f"{target} changed, +{delay * 1000:.0f} ms", delay, target))
    return plan


def resume_kill(rng: random.Random) -> KillRule:
    """Kill a restarted run while it sends again what the killed run left in the outbox."""
    delay = rng.uniform(0.0, 0.03)
    return KillRule(
        f"resending the outbox, +{delay * 1000:.0f} ms", delay, lambda e: e.get("event") == "resuming_pending_writes"
    )


def changed_events(runs: list[WorkerRun]) -> list[dict[str, Any]]:
    return [e for run in runs for e in run.named("score_changed")]


def store_state(db: Path, portal_id: int) -> tuple[int, str | None, str | None]:
    """Outbox rows, backfill cursor and contacts cursor of a stopped worker's store."""
    store = SqlStateStore(f"sqlite:///{db}")
    try:
        return (
            len(store.pending_writes(portal_id)),
            store.get_cursor(portal_id, BACKFILL_CURSOR),
            store.get_cursor(portal_id, CONTACTS_CURSOR),
        )
    finally:
        store.close()


def history_counts(db: Path, portal_id: int) -> Counter[str]:
    store = SqlStateStore(f"sqlite:///{db}")
    try:
        query = (
            sa.select(schema.score_history.c.contact_id, sa.func.count())
            .where(schema.score_history.c.portal_id == portal_id)
            .group_by(schema.score_history.c.contact_id)
        )
        with store.engine.connect() as conn:
            return Counter(dict(conn.execute(query).all()))
    finally:
        store.close()


def values(snapshot: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {c["id"]: {p: c["properties"].get(p) or "" for p in COMPARED} for c in snapshot["contacts"]}


def number(text: object) -> float | None:
    try:
        return float(str(text))
    except ValueError:
        return None


def event_ms(event: dict[str, Any]) -> int:
    return int(datetime.fromisoformat(event["timestamp"]).timestamp() * 1000)


@dataclass
class CrashedRuns:
    """The crashed sandbox's runs in order: each killed one, then the one that ended ok."""

    runs: list[WorkerRun]
    kills: list[Kill]


def crash_until_done(
    command: list[str], workdir: Path, sandbox: SandboxProcess, db: Path, portal_id: int, rng: random.Random
) -> CrashedRuns:
    """SIGKILL the backfill at each planned point (and some restarts while they resend the outbox), restarting
    it with --full each time, until a run ends on its own."""
    plan = kill_plan(rng)
    crashed = CrashedRuns([], [])
    runs, kills = crashed.runs, crashed.kills
    resumes_left = RESUME_KILLS
    outbox = OutboxWatch(db)
    try:
        for index in range(1, len(plan) + RESUME_KILLS + 2):  # every kill, then the run that ends it
            resume = bool(kills and kills[-1].pending and not kills[-1].resumed and resumes_left)
            rule: KillRule | None = None
            if resume:
                rule, resumes_left = resume_kill(rng), resumes_left - 1
            elif plan:
                rule = plan.pop(0).rule(len(changed_events(runs)), outbox)
            run = run_worker(
                index, command, env={TOKEN_ENV: TOKEN}, workdir=workdir, kill=rule, timeout_s=CRASHED_RUN_S
            )
            runs.append(run)
            if run.killed:
                pending = store_state(db, portal_id)[0]
                kills.append(Kill(run, sandbox.writes_applied(), pending, resume))
                continue
            assert rule is None, (
                f"crashed-sandbox run {index} ended on its own (exit {run.exit_code}) before its planned kill "
                f"({rule.reason}): {run.finished}\n{run.stderr}"
            )
            break
    finally:
        outbox.close()
    return crashed


def kill_report(clean: WorkerRun, crashed: CrashedRuns, crashed_s: float, total_s: float) -> list[str]:
    final = crashed.runs[-1]
    return [
        f"clean run {clean.seconds:.1f} s; crashed runs {crashed_s:.1f} s; both {total_s:.1f} s",
        *(
            f"  run {k.run.index:2d}: killed {k.run.killed_after_s:5.2f} s in ({k.run.kill_reason}); sandbox writes "
            f"{k.writes_applied:5d}; outbox left {k.pending:3d}; {len(k.run.named('score_changed')):4d} score_changed"
            for k in crashed.kills
        ),
        f"  run {final.index:2d}: exit {final.exit_code}, {final.finished}",
    ]


def check_the_crashed_backfill_finished(final: WorkerRun, db: Path, portal_id: int) -> None:
    """The last crashed run ended ok with nothing pending: the outbox is empty and the backfill is done."""
    assert not final.killed and final.exit_code == 0 and final.finished and final.finished["status"] == "ok"
    pending, backfill_cursor, contacts_cursor = store_state(db, portal_id)
    assert (pending, backfill_cursor) == (0, "done") and contacts_cursor, (pending, backfill_cursor, contacts_cursor)


def check_the_kills(crashed: CrashedRuns, clean_written: int, report: list[str]) -> None:
    """The backfill was really killed, at least 10 times: before any write, and all through the writes. Some kills
    left a batch in the outbox, and the next run sent it again first."""
    kills = crashed.kills
    assert len(kills) >= 10, report
    assert kills[0].writes_applied == 0, "the first kill lands before any write"
    counts = [k.writes_applied for k in kills]
    grew = sum(1 for before, after in itertools.pairwise(counts) if after > before)
    assert grew >= PROGRESS_KILLS - 1, f"the sandbox's write count grew between kills: {counts}"
    assert min(c for c in counts if c) < clean_written // 4 and max(counts) > clean_written * 3 // 4, counts

    left = [(k, crashed.runs[k.run.index]) for k in kills if k.pending]  # runs[i] is run i + 1: the one after
    assert left, "some kill landed while a batch sat in the outbox"
    for kill, after in left:
        resumed = after.named("resuming_pending_writes")
        assert resumed and resumed[0]["count"] == kill.pending, (kill.run.index, kill.pending, resumed)


def check_the_portals_end_alike(
    clean_sb: SandboxProcess, crashed_sb: SandboxProcess, clean_written: int
) -> tuple[set[str], set[str]]:
    """The crashed portal ends exactly as the clean one, and no write is lost; the contacts each run scored."""
    clean_values = values(clean_sb.get("snapshot"))
    crashed_values = values(crashed_sb.get("snapshot"))
    assert clean_values.keys() == crashed_values.keys()
    differ = {cid: (v, crashed_values[cid]) for cid, v in clean_values.items() if v != crashed_values[cid]}
    assert not differ, f"{len(differ)} contacts differ from the clean run, e.g. {list(differ.items())[:3]}"

    # Every contact the clean run scored holds its score in the crashed portal too.
    clean_scored = {cid for cid, v in clean_values.items() if v["ls_score"]}
    crashed_scored = {cid for cid, v in crashed_values.items() if v["ls_score"]}
    assert len(clean_scored) == clean_written
    assert clean_scored <= crashed_scored and len(crashed_scored) == len(clean_scored)
    return clean_scored, crashed_scored


def check_nothing_recorded_twice(clean_db: Path, crashed_db: Path, portal_id: int, clean_scored: set[str]) -> None:
    """One history row per written contact, the same contacts as the clean run's."""
    clean_history = history_counts(clean_db, portal_id)
    crashed_history = history_counts(crashed_db, portal_id)
    assert crashed_history.keys() == clean_history.keys() == clean_scored
    twice = {cid: n for cid, n in crashed_history.items() if n != 1}
    assert not twice, f"contacts with more than one history row: {list(twice.items())[:5]}"


def check_every_score_change_was_written(
    writes: list[dict[str, Any]], runs: list[WorkerRun], crashed_scored: set[str]
) -> None:
    """Every score_changed event matches a write the crashed sandbox had received, setting that score."""
    scores: dict[str, list[tuple[float | None, int]]] = {}
    for write in writes:
        if "ls_score" in write["properties"]:
            scores.setdefault(write["contactId"], []).append((number(write["properties"]["ls_score"]), write["at"]))
    events = changed_events(runs)
    unmatched = [
        e
        for e in events
        if not any(s == number(e["new_score"]) and at <= event_ms(e) for s, at in scores.get(e["contact_id"], []))
    ]
    assert events and not unmatched, f"{len(unmatched)} of {len(events)} score_changed events match no write"
    # Events are logged before a batch is recorded: a kill in between repeats them, never loses one.
    silent = crashed_scored - {e["contact_id"] for e in events}
    assert not silent, f"{len(silent)} written contacts never got a score_changed event: {sorted(silent)[:5]}"


def test_a_backfill_killed_again_and_again_ends_exactly_where_a_clean_one_does(
    tmp_path: Path, sandboxes: tuple[SandboxProcess, SandboxProcess]
) -> None:
    began = time.monotonic()
    clean_sb, crashed_sb = sandboxes
    portal_id = yaml.safe_load(EXAMPLE.read_text())["portal"]["id"]
    clean_db, crashed_db = tmp_path / "clean.db", tmp_path / "crashed.db"
    clean_cmd = sync_command(portal_file(tmp_path, "clean", clean_sb.url), clean_db)
    crashed_cmd = sync_command(portal_file(tmp_path, "crashed", crashed_sb.url), crashed_db)
    with ThreadPoolExecutor(1) as pool:
        # The clean run, one uninterrupted backfill, alongside the crashed runs (each has its own sandbox).
        clean_future = pool.submit(
            run_worker, 0, clean_cmd, env={TOKEN_ENV: TOKEN}, workdir=tmp_path, kill=None, timeout_s=CLEAN_RUN_S
        )
        crashed = crash_until_done(crashed_cmd, tmp_path, crashed_sb, crashed_db, portal_id, random.Random(SEED))
        crashed_s = time.monotonic() - began
        clean = clean_future.result()

    report = kill_report(clean, crashed, crashed_s, time.monotonic() - began)
    print("\n".join(report))
    assert clean.exit_code == 0 and clean.finished and clean.finished["status"] == "ok", clean.stderr
    assert clean.finished["pulled"] == CONTACTS
    clean_written = clean.finished["written"]

    check_the_crashed_backfill_finished(crashed.runs[-1], crashed_db, portal_id)
    check_the_kills(crashed, clean_written, report)
    clean_scored, crashed_scored = check_the_portals_end_alike(clean_sb, crashed_sb, clean_written)
    check_nothing_recorded_twice(clean_db, crashed_db, portal_id, clean_scored)
    writes = crashed_sb.get("write_log")["writes"]
    check_every_score_change_was_written(writes, crashed.runs, crashed_scored)

    # Repeated work is bounded: beyond the clean run's writes, at most the batch in flight per kill.
    clean_per_contact = Counter(w["contactId"] for w in clean_sb.get("write_log")["writes"])
    crashed_per_contact = Counter(w["contactId"] for w in writes)
    again = [cid for cid, n in crashed_per_contact.items() if n > clean_per_contact.get(cid, 0)]
    assert len(again) <= BATCH * len(crashed.kills), (len(again), len(crashed.kills))
