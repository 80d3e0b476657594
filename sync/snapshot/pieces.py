"""A large JSON Lines snapshot read on every core: each worker parses and checks pieces of the file itself.

Reading a snapshot is nearly all parsing: the JSON of each line, then each record checked as the sync checks
what HubSpot sends. Scoring what was read takes a tenth of that. So a file with many contacts is cut, before
reading, into pieces of about `PIECE_BYTES` that each start at a contact's line (found by its first bytes, as
`write_lines` writes them): a contact and the events that follow it are always in one piece. Forked workers
read and check a piece each (`SnapshotStream.groups`, the one-process reader's own code), do the tool's work
on each contact there (score it, decide it, back-test it: `SnapshotStream.results`) and send back what that
gives, which costs far less to send than the contact and its events; this process takes the pieces back in
file order.

What a worker cannot know is what came before its piece: it numbers the piece's records and lines from zero,
and does not check a contact against the earlier ones (an id or email seen before). This process does both as
the pieces come back, in file order: it renumbers the problems, makes that check (the contacts' digests stay
on disk, as in one process) and counts a refused contact's events as matching no contact. The contacts,
events, problems, counts and errors are those of reading the file in one process.

A file is read in one process when it is small (under `PARALLEL_BYTES` of contacts), on one core or with
`LEADSYNC_PROCESSES=1`, when fork is not available, or when its contact lines cannot be found often enough to
keep a piece under `LONGEST_PIECE` (a file written with other line shapes).
"""

from __future__ import annotations

import json
import multiprocessing
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Final, Generic, TypeVar

from sync.core.model import Contact, Event
from sync.errors import ConfigError, ConfigProblem
from sync.pipeline.parallel import Parallel, worker_processes
from sync.snapshot import ContactCheck

if TYPE_CHECKING:
    from sync.snapshot.lines import SnapshotStream

PARALLEL_BYTES: Final = 48 * 2**20  # fewer bytes of contacts (~12,000 contacts) are read in this process
PIECE_BYTES: Final = 2**20  # a worker's piece: about 250 contacts of 20 events
LONGEST_PIECE: Final = 64 * 2**20  # a piece longer than this (no contact line found) keeps the file in one process
CONTACT_LINE: Final = b'\n{"record": "contact",'  # a newline, then the start of a contact's line as written
WINDOW: Final = 2**16  # bytes read at a time looking for the next contact's line

_KINDS = {"contacts": "contact", "form_submissions": "form_submission", "email_events": "email_event"}
_NUMBERED = re.compile(r"^(contacts|form_submissions|email_events)\[(\d+)\]")


R = TypeVar("R")
Work = Callable[[Contact, list[Event]], R]  # what a tool works out of each contact: pure, so a worker may do it


@dataclass
class Piece(Generic[R]):
    """What a worker read of its piece: each contact accepted on its own (its index and problem mark within
    the piece, id, email, events, and the work's result), the piece's problems and counts, and the damage
    that stopped it."""

    groups: list[tuple[int, int, str, str, int, R]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # records by kind
    lines: int = 0
    repeats: int = 0
    unattached: int = 0
    ignored: int = 0
    error: list[ConfigProblem] | None = None  # a ConfigError's problems (the exception itself does not pickle)
    unread: tuple[int, int, str, str] | None = None  # the contact the error came in (index, mark, id, email)
    failure: str = ""  # the work's exception, as text, after the last contact in `groups`


class WorkError(RuntimeError):
    """The work a worker did on a contact raised (a bug: the tools' work reports a bad contact as a value)."""


def reader(stream: SnapshotStream) -> PieceReader | None:
    """The reader of `stream`'s contacts on every core, or None when one process reads them (see above)."""
    processes = worker_processes()
    first = stream.first_line
    if processes < 2 or first is None or "fork" not in multiprocessing.get_all_start_methods():
        return None
    start = _offset(stream.path, first)
    size = stream.path.stat().st_size
    if start is None or size - start < PARALLEL_BYTES:
        return None
    cuts = cut(stream.path, start, size, PIECE_BYTES)
    return PieceReader(stream, cuts, processes) if cuts is not None else None


def _offset(path: Path, line: int) -> int | None:
    """The byte at which the file's `line` starts; None where a line ends in a lone carriage return (a line
    ending the text reader knows, a byte-offset reader would have to find again)."""
    offset = 0
    with path.open("rb") as stream:
        for _ in range(line - 1):
            text = stream.readline()
            if not text.endswith(b"\n") or b"\r" in text[:-2]:
                return None
            offset += len(text)
    return offset


def cut(path: Path, start: int, end: int, piece: int) -> list[tuple[int, int]] | None:
    """The file's bytes from `start` (a contact's line) to `end`, cut into pieces of at least `piece` bytes
    that each start at a contact's line; None when one would be longer than `LONGEST_PIECE`. Only a few KiB
    are read at each cut (by `read`, not a mapping of the file, whose pages would count in this process's
    memory)."""
    pieces: list[tuple[int, int]] = []
    with path.open("rb") as stream:
        while start < end:
            found = _next_contact(stream, start + piece - 1, end)
            stop = end if found is None else found + 1
            if stop - start > LONGEST_PIECE:
                return None
            pieces.append((start, stop))
            start = stop
    return pieces


def _next_contact(stream: BinaryIO, at: int, end: int) -> int | None:
    """Where the newline before the first whole contact line at or after `at` is; None when there is none."""
    while at < end:
        stream.seek(at)
        block = stream.read(min(WINDOW, end - at))
        found = block.find(CONTACT_LINE)
        if found < 0:
            at += max(1, len(block) - len(CONTACT_LINE) + 1)  # a match across two reads is found in the next
        elif _contact_at(stream, at + found + 1, end):
            return at + found
        else:
            at += found + 1
    return None


def _contact_at(stream: BinaryIO, start: int, end: int) -> bool:
    """Whether the line at `start` is a whole contact record (not a damaged line, nor one whose `record` key is
    given again further on): a piece starts only there, so that it ends where the one process would go on."""
    stream.seek(start)
    try:
        record = json.loads(stream.readline(end - start))
    except ValueError:  # not JSON, or not UTF-8
        return False
    return isinstance(record, dict) and record.get("record") == "contact"


def read_piece(stream: SnapshotStream, work: Work[R], span: tuple[int, int]) -> Piece[R]:
    """In a worker: the piece's records, read and checked (`SnapshotStream.read_piece`), and the work done."""
    start, end = span
    with stream.path.open("rb") as file:
        file.seek(start)
        return stream.read_piece(file.read(end - start), work)


class PieceReader:
    """The contacts of a stream's pieces, read in worker processes, taken back in file order."""

    def __init__(self, stream: SnapshotStream, pieces: list[tuple[int, int]], processes: int) -> None:
        self.stream, self.pieces, self.processes = stream, pieces, processes

    def results(self, check: ContactCheck, work: Work[R]) -> Iterator[tuple[str, R]]:
        """Each contact's id and `work(contact, events)`, as `SnapshotStream.results` yields them; `check` refuses
        the contacts seen before."""
        tally = self.stream.tally
        line = self.stream.first_line or 1
        reading = partial(read_piece, self.stream, work)
        with Parallel(reading, processes=self.processes, start_after=0, chunk=1) as pool:
            for _, piece in pool.map(self.pieces):
                problems = [_renumbered(p, tally.index) for p in piece.problems]
                refused: list[tuple[int, str]] = []
                taken: list[tuple[str, R]] = []
                for i, mark, contact_id, email, events, value in piece.groups:
                    said: list[str] = []
                    if check.admit(tally.index["contact"] + i, contact_id, email, said):
                        taken.append((contact_id, value))
                    else:  # its events match no contact, as in one process
                        tally.unattached += events
                        refused.extend((mark, text) for text in said)
                if piece.unread is not None:  # one process checks a contact as it reads its line
                    i, mark, contact_id, email = piece.unread
                    said = []
                    check.admit(tally.index["contact"] + i, contact_id, email, said)
                    refused.extend((mark, text) for text in said)
                tally.records.problems.extend(_merged(problems, refused))
                tally.records.repeats += piece.repeats
                tally.unattached += piece.unattached
                tally.ignored += piece.ignored
                for kind, n in piece.counts.items():
                    tally.index[kind] += n
                yield from taken
                if piece.error is not None:
                    raise ConfigError([_moved(p, line - 1) for p in piece.error])
                if piece.failure:
                    raise WorkError(piece.failure)
                line += piece.lines


def _renumbered(problem: str, before: dict[str, int]) -> str:
    """A piece's problem naming its record by the index in the whole file (`before`: each kind's records
    before the piece)."""
    found = _NUMBERED.match(problem)
    if found is None:
        return problem
    section, i = found.group(1), int(found.group(2))
    return f"{section}[{i + before[_KINDS[section]]}]{problem[found.end() :]}"


def _merged(problems: list[str], refused: list[tuple[int, str]]) -> list[str]:
    """The piece's problems with those of the contacts refused here, each at its place (`mark`) among them."""
    merged: list[str] = []
    at = 0
    for mark, text in refused:
        merged += problems[at:mark]
        merged.append(text)
        at = mark
    return merged + problems[at:]


def _moved(problem: ConfigProblem, lines: int) -> ConfigProblem:
    return problem if problem.line is None else replace(problem, line=problem.line + lines)
