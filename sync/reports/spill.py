"""Lists as long as the portal, kept on disk, and JSON written piece by piece.

A plan lists every contact it would write: a million of them do not fit beside the scoring in bounded
memory, and neither does the JSON text of them. `Spill` keeps the first few in memory and the rest in a
temporary file, one JSON line each, read back in order as often as needed; `write_json` writes a document
whose long lists are iterables exactly as `json.dumps` would write it whole.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import islice
from typing import IO, Any, Generic, TypeVar

from sync.core.model import EmailEvent, Event, FormSubmission

T = TypeVar("T")

KEEP = 1000  # items kept in memory before the rest go to disk


class Spill(Generic[T]):
    """An append-only list that moves to a temporary file past `keep` items (`encode`/`decode` turn an item
    into JSON values and back)."""

    def __init__(self, encode: Callable[[T], Any], decode: Callable[[Any], T], keep: int = KEEP) -> None:
        self.encode, self.decode, self.keep = encode, decode, keep
        self._head: list[T] = []
        self._file: IO[str] | None = None
        self._len = 0

    def append(self, item: T) -> None:
        self._len += 1
        if self._file is None and len(self._head) < self.keep:
            self._head.append(item)
            return
        if self._file is None:
            # Lives as long as the list (closed by `close`, or when collected): removed when closed.
            self._file = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        self._file.write(json.dumps(self.encode(item), ensure_ascii=False) + "\n")

    def __len__(self) -> int:
        return self._len

    def __bool__(self) -> bool:
        return self._len > 0

    def __iter__(self) -> Iterator[T]:
        yield from self._head
        if self._file is None:
            return
        self._file.flush()
        self._file.seek(0)
        try:
            for line in self._file:
                yield self.decode(json.loads(line))
        finally:
            self._file.seek(0, 2)  # appends go on at the end

    def first(self, n: int) -> list[T]:
        return list(islice(self, n))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class Lazy:
    """A list in a document for `write_json`: its items come from an iterable, when written."""

    def __init__(self, items: Iterable[Any]) -> None:
        self.items = items


def materialize(value: Any) -> Any:
    """The document with every `Lazy` list read into a list: what `json.dumps` takes."""
    if isinstance(value, Lazy):
        return [materialize(v) for v in value.items]
    if isinstance(value, Mapping):
        return {k: materialize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [materialize(v) for v in value]
    return value


def write_json(value: Any, out: IO[str], indent: int | None = None, level: int = 0) -> None:
    """Writes `value` as `json.dumps(materialize(value), ensure_ascii=False, indent=indent)` would, one
    item of a `Lazy` list at a time."""
    if not _has_lazy(value):
        text = json.dumps(value, ensure_ascii=False, indent=indent)
        out.write(text.replace("\n", "\n" + " " * (indent * level)) if indent else text)
        return
    if isinstance(value, Mapping):
        items: Iterable[tuple[str | None, Any]] = value.items()
        opening, closing = "{", "}"
    else:
        items = ((None, v) for v in (value.items if isinstance(value, Lazy) else value))
        opening, closing = "[", "]"
    inner = "\n" + " " * (indent * (level + 1)) if indent else ""
    separator = "," + inner if indent else ", "
    empty = True
    for key, item in items:
        out.write((opening + inner) if empty else separator)
        empty = False
        if key is not None:
            out.write(json.dumps(key, ensure_ascii=False) + ": ")
        write_json(item, out, indent, level + 1)
    if empty:
        out.write(opening + closing)
    else:
        out.write(("\n" + " " * (indent * level) if indent else "") + closing)


def _has_lazy(value: Any) -> bool:
    if isinstance(value, Lazy):
        return True
    if isinstance(value, Mapping):
        return any(_has_lazy(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_lazy(v) for v in value)
    return False


class EventSpill:
    """A portal's events kept on disk by email, read back a page of contacts at a time.

    HubSpot lists events by form and by time, not by contact: a stream of contacts with their events needs
    every event on hand before the first contact. Held in memory that is the portal's largest part; here it is a
    temporary SQLite file (removed when closed), each event with its order of arrival, so a contact's events
    come back in the order they were read. Events looked up are marked: `unclaimed` gives the others."""

    def __init__(self) -> None:
        # An empty name: a private temporary database on disk, deleted when the connection closes.
        self._db = sqlite3.connect("")
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, email TEXT, claimed INTEGER, data TEXT)")
        self.count = 0

    def add(self, events: Iterable[Event]) -> None:
        rows = [(event.email, json.dumps(_event_state(event), ensure_ascii=False)) for event in events]
        self.count += len(rows)
        with self._db:
            self._db.executemany("INSERT INTO events (email, claimed, data) VALUES (?, 0, ?)", rows)

    def by_email(self, emails: Iterable[str]) -> dict[str, list[Event]]:
        """The events of these emails, each email's in the order they were added; marked as claimed."""
        if not self._indexed:
            self._db.execute("CREATE INDEX events_email ON events (email)")
            self._indexed = True
        wanted = sorted(set(emails) - {""})
        found: dict[str, list[Event]] = {}
        for start in range(0, len(wanted), _SQL_VARIABLES):
            chunk = wanted[start : start + _SQL_VARIABLES]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(f"SELECT email, data FROM events WHERE email IN ({marks}) ORDER BY seq", chunk)
            for email, data in rows:
                found.setdefault(email, []).append(_event_of(json.loads(data)))
            with self._db:
                self._db.execute(f"UPDATE events SET claimed = 1 WHERE email IN ({marks})", chunk)
        return found

    def unclaimed(self) -> Iterator[Event]:
        """The events no lookup asked for, in the order they were added."""
        for (data,) in self._db.execute("SELECT data FROM events WHERE claimed = 0 ORDER BY seq"):
            yield _event_of(json.loads(data))

    def close(self) -> None:
        self._db.close()

    _indexed = False


_SQL_VARIABLES = 500  # emails a query: well under SQLite's limit on bound values


def _event_state(event: Event) -> list[Any]:
    if isinstance(event, FormSubmission):
        return ["f", event.event_id, event.at_ms, event.email, event.form_id, event.form_name, event.page_url]
    assert isinstance(event, EmailEvent)
    return [
        "e",
        event.event_id,
        event.kind,
        event.at_ms,
        event.email,
        event.campaign_id,
        event.url,
        event.filtered,
        event.category,
        event.soft_bounce,
    ]


def _event_of(state: list[Any]) -> Event:
    if state[0] == "f":
        return FormSubmission(*state[1:])
    return EmailEvent(*state[1:])
