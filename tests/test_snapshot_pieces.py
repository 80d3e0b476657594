"""A large JSON Lines snapshot read on every core: the very contacts, events, problems and counts of one process.

The thresholds are lowered so that a small file is cut into many pieces, each read in a forked worker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sync.core.model import Contact
from sync.errors import ConfigError
from sync.pipeline import parallel
from sync.sandbox.generator import generate_portal
from sync.snapshot import pieces
from sync.snapshot.lines import SnapshotStream, write_document
from tests.test_snapshot import contact, open_event, submission

needs_fork = pytest.mark.skipif(
    "fork" not in __import__("multiprocessing").get_all_start_methods(), reason="pieces are read by forked workers"
)


@pytest.fixture
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Any file is read on 2 processes, in pieces of ~200 bytes; returns the pieces' count of each read."""
    monkeypatch.setenv(parallel.PROCESSES_ENV, "2")
    monkeypatch.setattr(pieces, "PARALLEL_BYTES", 0)
    monkeypatch.setattr(pieces, "PIECE_BYTES", 200)
    counts: list[int] = []
    real = pieces.PieceReader.__init__

    def counted(self: pieces.PieceReader, stream: SnapshotStream, cuts: list[tuple[int, int]], n: int) -> None:
        counts.append(len(cuts))
        real(self, stream, cuts, n)

    monkeypatch.setattr(pieces.PieceReader, "__init__", counted)
    return counts


def as_lines(raw: dict[str, Any], path: Path, newline: str = "\n") -> Path:
    with path.open("w", encoding="utf-8", newline=newline) as out:
        write_document(raw, out)
    return path


def read(path: Path, monkeypatch: pytest.MonkeyPatch, processes: int) -> dict[str, Any]:
    """Everything a reader of the file gives, read on `processes`."""
    with monkeypatch.context() as local:
        local.setenv(parallel.PROCESSES_ENV, str(processes))
        stream = SnapshotStream(path)
        inputs = list(stream.inputs())
    return {
        "inputs": inputs,
        "problems": stream.problems,
        "unattached": stream.unattached_events,
        "ignored": stream.ignored_events,
        "repeats": stream.records.repeats,
        "associations": stream.associations,
    }


def hostile_portal() -> dict[str, Any]:
    """Bad records of every kind, repeats, and contacts given twice (by id, by email) far apart."""
    contacts = [contact(str(n), f"u{n}@x.com") for n in range(1, 41)]
    contacts[5] = contact("x6", "u6@x.com")  # not numeric
    contacts[12] = contact("3", "dup-id@x.com")  # the id of an earlier contact
    contacts[30] = contact("131", "U20@x.com")  # the email of an earlier one, in another case
    contacts.append(contact("2", "late@x.com"))
    submissions = [submission(f"c{n}", f"u{n}@x.com") for n in range(1, 41)]
    submissions += [submission("c7", "u7@x.com"), submission("c-old", "u8@x.com", form_id="f-old")]
    submissions += [submission("c-bad", "u8@x.com", form_id="f-bad")]
    submissions += [submission("c-none", "nobody@x.com"), {"formId": ""}, submission("c-dup", "dup-id@x.com")]
    events = [open_event(f"e{n}", f"u{n % 40 + 1}@x.com") for n in range(120)]
    events += [open_event("e3", "u4@x.com"), open_event("bad", "u9@x.com", created="soon")]
    events += [open_event("e-20", "U20@x.com"), {"type": "OPEN"}, open_event("e-none", "nobody@x.com")]
    return {
        "portal_id": 9,
        "contacts": contacts,
        "forms": [
            {"id": "f-demo", "name": "Demo"},
            {"id": "f-old", "name": "Old", "archived": True},
            {"id": "f-bad", "formType": "nonsense"},
        ],
        "form_submissions": submissions,
        "email_events": events,
        "lists": [{"listId": 4, "contactIds": [1, 2, 33]}],
        "companies": [{"id": "10", "properties": {}}],
        "associations": [{"contactId": "1", "companyId": "10"}, {"contactId": "99", "companyId": "10"}],
    }


@needs_fork
def test_a_hostile_file_reads_the_same_in_pieces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_pieces: list[int]
) -> None:
    path = as_lines(hostile_portal(), tmp_path / "p.jsonl")
    one, every = read(path, monkeypatch, 1), read(path, monkeypatch, 2)
    assert small_pieces and small_pieces[0] > 20  # cut into many pieces, read by the workers
    assert every == one
    problems = one["problems"]
    assert "contacts[12]: contact 3 appears twice; the later one skipped" in problems
    assert "contacts[30]: contact 131: email u20@x.com is on an earlier contact; skipped" in problems
    assert "contacts[40]: contact 2 appears twice; the later one skipped" in problems
    assert any(p.startswith("email_events[") and "soon" in p for p in problems)
    assert one["unattached"] >= 3 and one["ignored"] == 1 and one["repeats"] == 2
    assert [c.list_ids for c, _ in one["inputs"][:2]] == [frozenset({4}), frozenset({4})]


@needs_fork
def test_a_generated_portal_reads_the_same_in_pieces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_pieces: list[int]
) -> None:
    raw = generate_portal(300, 5).snapshot()
    path = as_lines(raw, tmp_path / "p.jsonl")
    one, every = read(path, monkeypatch, 1), read(path, monkeypatch, 2)
    assert small_pieces and small_pieces[0] > 100
    assert every == one and len(one["inputs"]) == 300


@needs_fork
def test_windows_line_endings_read_the_same_in_pieces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_pieces: list[int]
) -> None:
    path = as_lines(hostile_portal(), tmp_path / "p.jsonl", newline="\r\n")
    assert b"\r\n" in path.read_bytes()
    assert read(path, monkeypatch, 2) == read(path, monkeypatch, 1)
    assert small_pieces


@needs_fork
@pytest.mark.parametrize(
    ("damage", "message"),
    [(b"{not json\n", "not valid JSON"), (b'{"record": "form", "id": "f"}\n', "a form after the first contact")],
)
def test_a_damaged_line_in_a_later_piece_stops_the_read_at_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_pieces: list[int], damage: bytes, message: str
) -> None:
    """The contacts before the damage come out; the error names the line of the whole file."""
    raw = {"contacts": [contact(str(n), f"u{n}@x.com") for n in range(1, 61)]}
    path = as_lines(raw, tmp_path / "p.jsonl")
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([*lines[:45], damage, *lines[45:]]))  # line 46
    for processes in (1, 2):
        with monkeypatch.context() as local:
            local.setenv(parallel.PROCESSES_ENV, str(processes))
            seen: list[str] = []
            with pytest.raises(ConfigError, match=message) as caught:
                for c, _ in SnapshotStream(path).inputs():
                    seen.append(c.id)
        assert caught.value.problems[0].line == 46
        assert seen == [str(n) for n in range(1, 44)]  # the 44th waits for its events: the damage comes first
    assert small_pieces


@needs_fork
def test_text_that_is_not_utf8_is_a_damaged_file_at_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_pieces: list[int]
) -> None:
    raw = {"contacts": [contact(str(n), f"u{n}@x.com", about="x" * 200) for n in range(1, 301)]}
    path = as_lines(raw, tmp_path / "p.jsonl")
    path.write_bytes(path.read_bytes().replace(b"u250@x.com", b"u250@\xff.com"))  # line 251, past 8 KiB blocks
    for processes in (1, 2):
        with monkeypatch.context() as local:
            local.setenv(parallel.PROCESSES_ENV, str(processes))
            seen: list[str] = []
            with pytest.raises(ConfigError, match="not UTF-8 text") as caught:
                for c, _ in SnapshotStream(path).inputs():
                    seen.append(c.id)
        assert caught.value.problems[0].line == 251
        assert seen == [str(n) for n in range(1, 249)]


@needs_fork
def test_a_contact_given_twice_just_before_the_damage_is_reported_as_in_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_pieces: list[int]
) -> None:
    raw = {"contacts": [contact(str(n), f"u{n}@x.com") for n in range(1, 61)] + [contact("5", "again@x.com")]}
    path = as_lines(raw, tmp_path / "p.jsonl")
    path.write_bytes(path.read_bytes() + b"{not json\n")
    problems = []
    for processes in (1, 2):
        with monkeypatch.context() as local:
            local.setenv(parallel.PROCESSES_ENV, str(processes))
            stream = SnapshotStream(path)
            with pytest.raises(ConfigError, match="not valid JSON"):
                list(stream.inputs())
            problems.append(stream.problems)
    assert problems[0] == problems[1] == ["contacts[60]: contact 5 appears twice; the later one skipped"]


@needs_fork
def test_a_piece_starts_only_at_a_whole_contact_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_pieces: list[int]
) -> None:
    """A line that starts as a contact's but is not one (its `record` given again, or cut short as by a full
    disk) is read inside a piece, where one process would read it."""
    raw = {"contacts": [contact(str(n), f"u{n}@x.com") for n in range(1, 61)]}
    path = as_lines(raw, tmp_path / "p.jsonl")
    lines = path.read_bytes().splitlines(keepends=True)
    event = json.dumps({**open_event("twice", "u30@x.com"), "record": "email_event"})
    odd = b'{"record": "contact", ' + event[1:].encode() + b"\n"
    path.write_bytes(b"".join([*lines[:31], odd, *lines[31:]]))  # after contact 30: its event
    assert read(path, monkeypatch, 2) == read(path, monkeypatch, 1)
    assert len(read(path, monkeypatch, 1)["inputs"][29][1]) == 1
    path.write_bytes(b"".join(lines) + b'{"record": "contact", "id": "61", "prop')  # cut short at the end
    for processes in (1, 2):
        with monkeypatch.context() as local:
            local.setenv(parallel.PROCESSES_ENV, str(processes))
            seen: list[str] = []
            with pytest.raises(ConfigError, match="not valid JSON"):
                for c, _ in SnapshotStream(path).inputs():
                    seen.append(c.id)
        assert seen == [str(n) for n in range(1, 60)]  # the 60th waits for its events: the damage comes first


def _fails_on_45(contact: Contact, events: Any) -> str:
    if contact.id == "45":
        raise KeyError("no such thing")
    return contact.id


@needs_fork
def test_the_work_failing_in_a_worker_is_raised_after_the_contacts_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_pieces: list[int]
) -> None:
    raw = {"contacts": [contact(str(n), f"u{n}@x.com") for n in range(1, 61)]}
    path = as_lines(raw, tmp_path / "p.jsonl")
    for processes, error in ((1, KeyError), (2, pieces.WorkError)):
        with monkeypatch.context() as local:
            local.setenv(parallel.PROCESSES_ENV, str(processes))
            seen: list[str] = []
            with pytest.raises(error, match="no such thing"):
                for _, value in SnapshotStream(path).results(_fails_on_45):
                    seen.append(value)
        assert seen == [str(n) for n in range(1, 45)]


def test_pieces_start_at_contact_lines_and_cover_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = as_lines(hostile_portal(), tmp_path / "p.jsonl")
    data = path.read_bytes()
    start = data.index(b'{"record": "contact",')
    cuts = pieces.cut(path, start, len(data), 500)
    monkeypatch.setattr(pieces, "WINDOW", 30)  # a contact's line found across many small reads
    assert pieces.cut(path, start, len(data), 500) == cuts
    assert cuts is not None and len(cuts) > 10
    assert [a for a, _ in cuts[1:]] == [b for _, b in cuts[:-1]] and cuts[0][0] == start and cuts[-1][1] == len(data)
    assert all(data[a:].startswith(b'{"record": "contact",') for a, _ in cuts)
    assert all(b - a >= 500 for a, b in cuts[:-1])


def test_the_contact_line_is_what_the_writer_writes(tmp_path: Path) -> None:
    path = as_lines({"contacts": [contact("1", "a@x.com")]}, tmp_path / "p.jsonl")
    assert pieces.CONTACT_LINE in path.read_bytes()
    assert json.loads(pieces.CONTACT_LINE[1:].rstrip(b",") + b"}") == {"record": "contact"}


def test_a_file_whose_contacts_cannot_be_found_is_read_in_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lines written with their fields in another order: no piece boundary is found, so one process reads it."""
    monkeypatch.setenv(parallel.PROCESSES_ENV, "2")
    monkeypatch.setattr(pieces, "PARALLEL_BYTES", 0)
    monkeypatch.setattr(pieces, "PIECE_BYTES", 100)
    monkeypatch.setattr(pieces, "LONGEST_PIECE", 1000)
    lines = ['{"snapshot": "leadsync", "version": 1}']
    lines += [json.dumps({**contact(str(n), f"u{n}@x.com"), "record": "contact"}) for n in range(1, 100)]
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    stream = SnapshotStream(path)
    assert pieces.reader(stream) is None
    assert len(list(stream.inputs())) == 99


def test_small_files_one_core_and_lone_carriage_returns_stay_in_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = as_lines(hostile_portal(), tmp_path / "p.jsonl")
    monkeypatch.setenv(parallel.PROCESSES_ENV, "2")
    assert pieces.reader(SnapshotStream(path)) is None  # under PARALLEL_BYTES
    monkeypatch.setattr(pieces, "PARALLEL_BYTES", 0)
    assert pieces.reader(SnapshotStream(path)) is not None
    monkeypatch.setenv(parallel.PROCESSES_ENV, "1")
    assert pieces.reader(SnapshotStream(path)) is None
    monkeypatch.setenv(parallel.PROCESSES_ENV, "2")
    old_mac = tmp_path / "cr.jsonl"
    old_mac.write_bytes(path.read_bytes().replace(b"\n", b"\r"))
    stream = SnapshotStream(old_mac)
    assert pieces.reader(stream) is None
    assert len(list(stream.inputs())) == 37  # 41, but for one not numeric and three given twice
