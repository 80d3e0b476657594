"""JSON Lines snapshots: the same portal as the single document, read one contact at a time."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from sync.errors import ConfigError
from sync.sandbox.generator import generate_portal
from sync.snapshot import load_snapshot_json, parse_snapshot, read_snapshot
from sync.snapshot.lines import SnapshotStream, is_lines, write_document
from tests.test_snapshot import AT, contact, open_event, submission


def as_lines(raw: dict[str, Any], path: Path) -> Path:
    with path.open("w", encoding="utf-8") as out:
        write_document(raw, out)
    return path


def streamed(path: Path) -> tuple[SnapshotStream, list[tuple[Any, Any]]]:
    stream = SnapshotStream(path)
    return stream, list(stream.inputs())


def test_a_generated_portal_streams_as_the_document_reads(tmp_path: Path) -> None:
    raw = generate_portal(300, 5).snapshot()
    stream, inputs = streamed(as_lines(raw, tmp_path / "p.jsonl"))
    whole = parse_snapshot(raw)
    assert inputs == list(whole.scoring_inputs())
    assert sum(len(events) for _, events in inputs) > 500  # the portal has events to tie
    assert any(c.list_ids for c, _ in inputs)  # list memberships come with the contacts
    assert (stream.portal_id, stream.unattached_events, stream.ignored_events) == (
        whole.portal_id,
        whole.unattached_events,
        whole.ignored_events,
    )
    assert stream.problems == whole.problems == []


def test_the_header_comes_first_and_records_after_it_by_kind(tmp_path: Path) -> None:
    raw = {
        "portal_id": 7,
        "contacts": [contact("1", "a@x.com"), contact("2", "b@x.com")],
        "forms": [{"id": "f-demo", "name": "Demo"}],
        "form_submissions": [submission("c1", "b@x.com")],
        "email_events": [open_event("e1", "a@x.com"), open_event("e2", "nobody@x.com")],
    }
    lines = [json.loads(line) for line in as_lines(raw, tmp_path / "p.jsonl").read_text().splitlines()]
    assert lines[0] == {"snapshot": "leadsync", "version": 1, "portal_id": 7}
    kinds = [(line["record"], line.get("id") or line.get("conversionId")) for line in lines[1:]]
    # each contact followed by its own events; the event of no contact last
    assert kinds == [
        ("form", "f-demo"),
        ("contact", "1"),
        ("email_event", "e1"),
        ("contact", "2"),
        ("form_submission", "c1"),
        ("email_event", "e2"),
    ]
    assert lines[3] == {"record": "email_event", **open_event("e1", "a@x.com")}  # HubSpot's shape, its type kept


def test_bad_records_are_reported_with_the_documents_texts(tmp_path: Path) -> None:
    raw = {
        "contacts": [
            contact("1", "a@x.com"),
            contact("x", "b@x.com"),
            contact("1", "c@x.com"),
            contact("4", "A@x.com"),
        ],
        "forms": [{"id": "f-old", "formType": "nonsense"}, {"id": "f-demo"}],
        "form_submissions": [submission("c1", "a@x.com", form_id="f-old"), submission("c2", "a@x.com")],
        "email_events": [open_event("e1", "a@x.com", created="soon"), open_event("e2", "a@x.com")],
        "lists": [{"listId": "nope"}],
        "companies": [{"id": "10", "properties": {}}, {"id": "10", "properties": {}}],
        "associations": [
            {"contactId": "1", "companyId": "10"},
            {"contactId": "99", "companyId": "10"},
            {"contactId": "1", "companyId": "77"},
            {"contactId": "1"},
        ],
    }
    stream, inputs = streamed(as_lines(raw, tmp_path / "p.jsonl"))
    whole = parse_snapshot(raw)
    assert sorted(stream.problems) == sorted(whole.problems)
    assert len(stream.problems) == 11
    assert inputs == list(whole.scoring_inputs())
    assert [(a.contact_id, a.company_id) for a in stream.associations] == [("1", "10"), ("99", "10")]


def test_a_repeated_event_is_read_once(tmp_path: Path) -> None:
    raw = {
        "contacts": [contact("1", "a@x.com")],
        "forms": [{"id": "f-demo"}],
        "form_submissions": [submission("c1", "a@x.com"), submission("c1", "a@x.com")],
        "email_events": [open_event("e1", "a@x.com"), open_event("e1", "a@x.com")],
    }
    _, inputs = streamed(as_lines(raw, tmp_path / "p.jsonl"))
    assert [e.event_id for e in inputs[0][1]] == [e.event_id for e in read_snapshot_of(raw, tmp_path)[0][1]]
    assert len(inputs[0][1]) == 2


def read_snapshot_of(raw: dict[str, Any], tmp_path: Path) -> list[tuple[Any, Any]]:
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    return list(read_snapshot(path).scoring_inputs())


def test_contacts_are_read_as_the_file_goes(tmp_path: Path) -> None:
    """One pass: the first contacts come out before a damaged line further on is reached."""
    raw = {"contacts": [contact(str(n), f"u{n}@x.com") for n in range(1, 6)]}
    path = as_lines(raw, tmp_path / "p.jsonl")
    path.write_text(path.read_text() + "{not json\n", encoding="utf-8")
    inputs = SnapshotStream(path).inputs()
    assert next(inputs)[0].id == "1"
    with pytest.raises(ConfigError, match="not valid JSON") as caught:
        list(inputs)
    assert caught.value.problems[0].line == 7


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"snapshot": "leadsync", "version": 2}\n', "snapshot version 2: this leadsync reads 1"),
        ('{"snapshot": "leadsync", "version": 1}\n{"id": "1"}\n', "needs a 'record' field"),
        (
            '{"snapshot": "leadsync", "version": 1}\n{"record": "contact", "id": "1", "properties": {}}\n'
            '{"record": "form", "id": "f"}\n',
            "a form after the first contact",
        ),
    ],
)
def test_a_damaged_file_is_refused_with_its_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(text, encoding="utf-8")
    for read in (lambda: list(SnapshotStream(path).inputs()), lambda: load_snapshot_json(path)):
        with pytest.raises(ConfigError, match=message):
            read()


def test_the_form_is_told_by_content_not_by_name(tmp_path: Path) -> None:
    raw = {"portal_id": 3, "contacts": [contact("1", "a@x.com")], "email_events": [open_event("e1", "a@x.com")]}
    lines = as_lines(raw, tmp_path / "named.json")  # JSON Lines under a .json name
    document = tmp_path / "doc.jsonl"  # a document under a .jsonl name, on one line
    document.write_text(json.dumps(raw), encoding="utf-8")
    assert is_lines(lines) and not is_lines(document)
    assert load_snapshot_json(lines) == {**raw, "email_events": raw["email_events"]}
    assert read_snapshot(lines).contacts == read_snapshot(document).contacts


def test_the_sandbox_serves_a_lines_snapshot(tmp_path: Path) -> None:
    from sync.sandbox.cli import load_snapshot_portal

    raw = {"portal_id": 3, "contacts": [contact("1", "a@x.com", lastmodifieddate=str(AT))]}
    portal, problems = load_snapshot_portal(str(as_lines(raw, tmp_path / "p.jsonl")), AT)
    assert problems == [] and portal.portal_id == 3


def test_write_document_counts_every_record() -> None:
    raw = {"contacts": [contact("1", "a@x.com")], "email_events": [open_event("e1", "z@x.com")]}
    out = io.StringIO()
    counts = write_document(raw, out)
    assert counts["contact"] == counts["email_event"] == 1
    assert len(out.getvalue().splitlines()) == 3


def test_contacts_given_twice_far_apart_are_found_once_the_keys_are_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the reader remembers of each contact moves to disk a block at a time: a repeat is found all the
    same, by id or by email, however far back its first copy was."""
    from sync.snapshot import lines, seen

    monkeypatch.setattr(lines, "DigestSet", lambda: seen.DigestSet(block=16, filter_bits=1 << 8))
    contacts = [contact(str(n), f"u{n}@x.com") for n in range(1, 201)]
    contacts += [contact("3", "new@x.com"), contact("999", "U7@x.com"), contact("1000", "fresh@x.com")]
    raw = {"contacts": contacts}
    stream, inputs = streamed(as_lines(raw, tmp_path / "p.jsonl"))
    assert stream.problems == parse_snapshot(raw).problems
    assert stream.problems == [
        "contacts[200]: contact 3 appears twice; the later one skipped",
        "contacts[201]: contact 999: email u7@x.com is on an earlier contact; skipped",
    ]
    assert [c.id for c, _ in inputs][-2:] == ["200", "1000"]
