"""Edge data, one rule each, the same offline and live (README "Edge data").

Offline is `leadsync score`'s path: a snapshot read by `parse_snapshot`. Live is `leadsync sync`'s path
without the HTTP (tests/e2e/test_edge_data.py has that): HubSpot records parsed by the adapter's
functions, kept in and read back from the state store, submissions named by the forms listed now.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sync.core.model import ScoreResult, with_current_form_names
from sync.core.scoring import score
from sync.errors import SkippableRecordError
from sync.hubspot.shapes import contact_from_wire, email_event_from_wire, submission_from_wire
from sync.snapshot import parse_snapshot
from sync.store.state import SqlStateStore
from tests.factories import NOW, NOW_MS, rules_from, unclamped

DAY_MS = 86_400_000
EMAIL = "jane@buyer-corp.com"
MODEL: dict[str, Any] = {
    "fit": {
        "rules": [
            {"id": "size", "property": "size_text", "bands": [{"lt": 1000, "points": 5}, {"gte": 1000, "points": 20}]}
        ]
    },
    "engagement": {
        "rules": [
            {"id": "any-form", "event": "form_submission", "points": 2, "per": "occurrence", "max": 20},
            {"id": "demo", "event": "form_submission", "form_name_contains": ["demo"], "points": 30},
            {"id": "by-id", "event": "form_submission", "form_id": ["f-old"], "points": 4},
            {"id": "clicks", "event": "email_click", "points": 3, "per": "occurrence", "max": 30},
        ],
        "decay": {"inactivity": [{"after_days": 30, "points": -5}, {"after_days": 90, "points": -10}]},
    },
}


def _rules() -> Any:
    data = unclamped()
    del data["holdout"], data["exclusions"]
    data["model"].update(MODEL)
    return rules_from(data)


RULES = _rules()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStateStore]:
    store = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
    yield store
    store.close()


def portal(
    createdate: str | None = str(NOW_MS - 10 * DAY_MS),
    size: str | None = None,
    submissions: Sequence[tuple[str, int]] = (),
    clicks: Sequence[int] = (),
    forms: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A one-contact snapshot in HubSpot's shapes."""
    props = {"email": EMAIL, "createdate": createdate, "size_text": size}
    return {
        "contacts": [{"id": "1", "properties": {k: v for k, v in props.items() if v is not None}}],
        "forms": [{"id": k, "name": v} for k, v in (forms or {}).items()],
        "form_submissions": [
            {"formId": f, "conversionId": f"cv-{i}", "submittedAt": at, "values": [{"name": "email", "value": EMAIL}]}
            for i, (f, at) in enumerate(submissions)
        ],
        "email_events": [
            {"id": f"e-{i}", "type": "CLICK", "recipient": EMAIL, "created": at} for i, at in enumerate(clicks)
        ],
    }


def offline(raw: dict[str, Any], now: datetime = NOW) -> ScoreResult:
    ((contact, events),) = list(parse_snapshot(raw).scoring_inputs())
    return score(contact, events, RULES, now)


def live(
    raw: dict[str, Any], store: SqlStateStore, forms_then: dict[str, str] | None = None, now: datetime = NOW
) -> ScoreResult:
    """As a sync does: submissions pulled while `forms_then` were listed, scored with the forms listed now."""
    then = forms_then if forms_then is not None else {f["id"]: f["name"] for f in raw["forms"]}
    store.upsert_contacts(1, [contact_from_wire(raw["contacts"][0])])
    events: list[Any] = []
    for item in raw["form_submissions"]:
        try:
            events.append(submission_from_wire(item, item["formId"], then.get(item["formId"], "")))
        except SkippableRecordError:
            continue
    for item in raw["email_events"]:
        try:
            events.append(email_event_from_wire(item))
        except SkippableRecordError:
            continue
    store.add_events(1, events)
    (contact,) = store.get_contacts(1, ["1"])
    stored = store.events_for_emails(1, [EMAIL]).get(EMAIL, [])
    now_forms = {f["id"]: f["name"] for f in raw["forms"]}
    return score(contact, with_current_form_names(stored, now_forms), RULES, now)


def same(a: ScoreResult, b: ScoreResult) -> tuple[int, int, int, int]:
    assert (a.score, a.fit, a.engagement, a.decay) == (b.score, b.fit, b.engagement, b.decay)
    return a.score, a.fit, a.engagement, a.decay


@pytest.mark.parametrize(
    ("createdate", "decay", "detail"),
    [
        (None, 0, "no engagement and no create date"),
        ("", 0, "no engagement and no create date"),
        ("  ", 0, "no engagement and no create date"),
        ("0", 0, "no engagement and no create date"),  # 1970 or before cannot be real
        ("1969-06-01T00:00:00Z", 0, "no engagement and no create date"),
        (str(NOW_MS + 5 * DAY_MS), 0, "created 0d ago: no step"),  # after now: age 0, never negative
        ("2999-01-01T00:00:00Z", 0, "created 0d ago: no step"),
        (str(NOW_MS - 40 * DAY_MS), -5, "created 40d ago: step 30d (replace)"),
    ],
)
def test_createdate(createdate: str | None, decay: int, detail: str, store: SqlStateStore) -> None:
    raw = portal(createdate=createdate)
    result = offline(raw)
    assert same(result, live(raw, store))[3] == decay
    (line,) = [h for h in result.breakdown if h.rule == "decay:inactivity"]
    assert line.detail == detail


@pytest.mark.parametrize(
    ("at_ms", "counted_now", "counted_in_3_days"),
    [
        (-5000, False, False),  # before 1970: skipped with a problem
        (0, False, False),
        (1, True, True),
        (NOW_MS - 2 * DAY_MS, True, True),
        (NOW_MS + 2 * DAY_MS, False, True),  # after now: kept, counted from its time on
    ],
)
def test_event_times(at_ms: int, counted_now: bool, counted_in_3_days: bool, store: SqlStateStore) -> None:
    raw = portal(submissions=[("f-demo", at_ms)], clicks=[at_ms], forms={"f-demo": "Demo request"})
    for now, counted in ((NOW, counted_now), (NOW + timedelta(days=3), counted_in_3_days)):
        engagement = same(offline(raw, now), live(raw, store, now=now))[2]
        assert engagement == (2 + 30 + 3 if counted else 0)
    problems = parse_snapshot(raw).problems
    assert len(problems) == (2 if at_ms <= 0 else 0)
    assert all("at or before 1970-01-01: not a real time; skipped" in p for p in problems)


@pytest.mark.parametrize(
    ("size", "fit"),
    [
        ("999", 5),
        ("1,000", 20),
        ("1,000,000", 20),
        ("１０００", 20),
        ("１，０００", 20),
        (" +700 ", 5),
        ("1_000", 0),  # not a HubSpot number: the band does not match
        ("1,5", 0),  # a decimal comma never becomes 15
        ("1 000", 0),
    ],
)
def test_numbers(size: str, fit: int, store: SqlStateStore) -> None:
    raw = portal(size=size)
    assert same(offline(raw), live(raw, store))[1] == fit


@pytest.mark.parametrize(
    ("forms_then", "forms_now", "engagement"),
    [
        ({"f-old": "Old demo form"}, {"f-old": "Old demo form"}, 2 + 30 + 4),  # listed: its name counts
        ({"f-old": "Old demo form"}, {}, 2 + 4),  # deleted: any-form and form_id still count, the name not
        ({"f-old": "Old demo form"}, {"f-old": "Newsletter"}, 2 + 4),  # renamed: its name now
        ({}, {"f-old": "Old demo form"}, 2 + 30 + 4),
    ],
)
def test_submissions_of_forms_the_portal_no_longer_lists(
    forms_then: dict[str, str], forms_now: dict[str, str], engagement: int, store: SqlStateStore
) -> None:
    raw = portal(submissions=[("f-old", NOW_MS - 2 * DAY_MS)], forms=forms_now)
    assert same(offline(raw), live(raw, store, forms_then))[2] == engagement
