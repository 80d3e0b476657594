"""Operator tools on a JSON Lines snapshot: the same output as on the single document, in bounded memory."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from sync.cli import main
from sync.config import load_portal
from sync.core.rules import compile_ruleset
from sync.reports.backtest import DEFAULT_OUTCOME, parse_outcome, run_backtest
from sync.reports.dataset import ContactStream, from_snapshot
from sync.reports.spill import Lazy, Spill, materialize, write_json
from sync.snapshot.lines import write_document
from sync.store.state import SqlStateStore
from tests.reports.conftest import CONFIG, NOW, NOW_MS

ROOT = Path(__file__).resolve().parent.parent.parent
ACCOUNTS = ROOT / "tests" / "data" / "accounts"


def lines_of(document: Path, tmp_path: Path, name: str = "portal.jsonl") -> Path:
    path = tmp_path / name
    with path.open("w", encoding="utf-8") as out:
        write_document(json.loads(document.read_text(encoding="utf-8")), out)
    return path


def both_forms(document: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The document and its JSON Lines form under names of one length (the tables wrap the name alike): the
    form is told by content."""
    copy = tmp_path / "doc.json"
    copy.write_text(document.read_text(encoding="utf-8"), encoding="utf-8")
    return copy, lines_of(document, tmp_path, "lns.json")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def without_source(out: str, *files: Path) -> str:
    for file in files:
        out = out.replace(str(file), "SNAPSHOT")
    return out


COMMANDS = [
    ("score", "--json"),
    ("score", "--jsonl"),
    ("plan", "--json"),
    ("plan",),
    ("plan", "--json", "--base-config", str(ROOT / "tests" / "data" / "valid" / "minimal.yaml")),
    ("backtest", "--json"),
    ("backtest",),
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_both_forms_of_a_portal_give_the_same_output(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, snapshot_file: Path, command: tuple[str, ...]
) -> None:
    forms = both_forms(snapshot_file, tmp_path)
    outputs = [
        without_source(run(capsys, *command, "--config", CONFIG, "--snapshot", str(s), "--now", NOW), s) for s in forms
    ]
    assert outputs[0] == outputs[1]
    assert len(outputs[0]) > 5000  # the whole output, not an error line


@pytest.mark.parametrize("command", [("score", "--json"), ("plan", "--json"), ("backtest", "--json")], ids=" ".join)
def test_both_forms_give_the_same_account_scores(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: tuple[str, ...]
) -> None:
    config = str(ACCOUNTS / "accounts.yaml")
    outputs = [
        without_source(run(capsys, *command, "--config", config, "--snapshot", str(s), "--now", NOW), s)
        for s in both_forms(ACCOUNTS / "snapshot.json", tmp_path)
    ]
    assert outputs[0] == outputs[1] and "companies" in outputs[0]


def test_the_report_reads_a_lines_snapshot(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, snapshot_file: Path
) -> None:
    lines = lines_of(snapshot_file, tmp_path)
    reports = []
    for s in (snapshot_file, lines):
        out = tmp_path / f"{s.suffix[1:]}.html"
        argv = ["report", "--config", CONFIG, "--snapshot", str(s), "--now", NOW, "--out", str(out), "--json"]
        document = json.loads(run(capsys, *argv, "--db", f"sqlite:///{tmp_path}/none.db"))
        reports.append({k: v for k, v in document.items() if k not in ("out", "bytes", "source")})
    assert reports[0] == reports[1] and reports[0]["contacts"]["total"] == 1500


def test_a_lines_snapshot_is_streamed_not_loaded(tmp_path: Path, snapshot_file: Path) -> None:
    stream = ContactStream(lines_of(snapshot_file, tmp_path))
    assert stream.count is None  # no contact read yet
    inputs = stream.inputs()
    first, _ = next(inputs)
    assert first.id == from_snapshot(snapshot_file).contacts[0].id
    assert sum(1 for _ in inputs) == 1499


def test_the_backtest_counts_alike_contacts_together(snapshot_file: Path) -> None:
    rules = compile_ruleset(load_portal(CONFIG).rules)
    data = from_snapshot(snapshot_file)
    bt = run_backtest(data.inputs(), rules, NOW_MS, parse_outcome(DEFAULT_OUTCOME))
    assert sum(bt.scored.values()) == bt.overall.contacts == 1447
    assert len(bt.scored) < bt.overall.contacts / 3  # a count per kind of contact, not a row per contact


def test_a_spill_reads_back_what_went_to_disk() -> None:
    spill: Spill[tuple[str, int]] = Spill(list, lambda v: (v[0], v[1]), keep=3)
    items = [(f"c{n}", n) for n in range(10)]
    for item in items[:7]:
        spill.append(item)
    assert list(spill) == items[:7] and spill.first(2) == items[:2]
    for item in items[7:]:  # appends go on after a read
        spill.append(item)
    assert list(spill) == list(spill) == items
    assert len(spill) == 10 and spill._file is not None  # past `keep`: on disk
    spill.close()


def documents() -> list[Any]:
    """Documents with `Lazy` lists (read once: a fresh copy for each writer)."""
    return [
        {"a": 1, "list": Lazy(iter([{"x": [1, 2]}, {"y": "é"}])), "empty": Lazy(iter([])), "z": {"w": []}},
        [Lazy(n for n in range(3)), {}, [], "s"],
        {"only": Lazy(iter([]))},
        {"plain": [1, {"b": None}]},
    ]


@pytest.mark.parametrize("indent", [None, 2])
@pytest.mark.parametrize("index", range(len(documents())))
def test_write_json_writes_what_json_dumps_would(indent: int | None, index: int) -> None:
    out = io.StringIO()
    write_json(documents()[index], out, indent=indent)
    assert out.getvalue() == json.dumps(materialize(documents()[index]), ensure_ascii=False, indent=indent)


def test_written_stages_are_read_a_page_at_a_time_as_contacts_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from sync.cli import common
    from sync.core.model import Contact, Event

    asked: list[list[str]] = []

    def written(args: argparse.Namespace, portal_id: int, ids: list[str]) -> dict[str, str]:
        asked.append(ids)
        return {cid: f"stage-{cid}" for cid in ids if cid != "4"}

    monkeypatch.setattr(common, "_written_stages", written)
    monkeypatch.setattr(common, "STAGE_PAGE", 2)
    contacts: list[tuple[Contact, list[Event]]] = [(Contact(str(n), {}), []) for n in range(1, 6)]
    stages: dict[str, str] = {}
    seen = [
        (c.id, stages.get(c.id))
        for c, _ in common.inputs_with_written_stages(argparse.Namespace(), 1, contacts, stages)
    ]
    assert seen == [("1", "stage-1"), ("2", "stage-2"), ("3", "stage-3"), ("4", None), ("5", "stage-5")]
    assert asked == [["1", "2"], ["3", "4"], ["5"]]
    assert len(stages) == 1  # only the last page is held


@pytest.mark.parametrize(
    "command",
    [
        ("plan", "--json"),
        ("plan", "--json", "--base-config", str(ROOT / "tests" / "data" / "valid" / "minimal.yaml")),
    ],
    ids=" ".join,
)
def test_many_contacts_are_decided_on_every_core_with_the_same_output(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    snapshot_file: Path,
    command: tuple[str, ...],
) -> None:
    """With the stages written read from the store a page at a time, the contacts are decided here, or past
    many of them in workers they are handed to."""
    from sync.pipeline import parallel

    started: list[int] = []
    real = parallel.Parallel._started

    def watched(self: parallel.Parallel[Any, Any]) -> Any:
        started.append(self.done)
        return real(self)

    lines = lines_of(snapshot_file, tmp_path)
    argv = [*command, "--config", CONFIG, "--snapshot", str(lines), "--now", NOW]
    db = f"sqlite:///{tmp_path / 'state.db'}"
    SqlStateStore(db).close()  # a store that has written nothing yet
    argv += ["--db", db]
    monkeypatch.setattr(parallel, "cores", lambda: 1)
    alone = run(capsys, *argv)
    assert started == []
    monkeypatch.setattr(parallel, "cores", lambda: 2)
    monkeypatch.setattr(parallel, "USE_WORKERS", True)
    monkeypatch.setattr(parallel, "PARALLEL_FROM", 100)
    monkeypatch.setattr(parallel.Parallel, "_started", watched)
    assert run(capsys, *argv) == alone
    assert started == [100]  # the first 100 here, the other 1,400 in the workers


@pytest.mark.parametrize(
    "command",
    [
        ("score", "--jsonl"),
        ("score", "--json"),
        ("score",),
        ("score", "--jsonl", "--contact", "1005", "--contact", "999999"),
        ("plan", "--json"),
        ("backtest", "--json"),
    ],
    ids=" ".join,
)
def test_a_large_file_is_read_on_every_core_with_the_same_output(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    snapshot_file: Path,
    command: tuple[str, ...],
) -> None:
    """Cut into pieces that forked workers read (and, for `score`, score): the output of one process."""
    from sync.pipeline import parallel
    from sync.snapshot import pieces

    pieces_read: list[int] = []
    real = pieces.PieceReader.results

    def watched(self: pieces.PieceReader, *args: Any) -> Any:
        pieces_read.append(len(self.pieces))
        return real(self, *args)

    lines = lines_of(snapshot_file, tmp_path)
    argv = [*command, "--config", CONFIG, "--snapshot", str(lines), "--now", NOW]
    monkeypatch.setattr(pieces, "PARALLEL_BYTES", 0)
    monkeypatch.setattr(pieces, "PIECE_BYTES", 8192)
    monkeypatch.setattr(pieces.PieceReader, "results", watched)
    monkeypatch.setenv(parallel.PROCESSES_ENV, "1")
    assert main(argv) == 0
    alone = capsys.readouterr()
    assert pieces_read == []
    monkeypatch.setenv(parallel.PROCESSES_ENV, "2")
    assert main(argv) == 0
    assert capsys.readouterr() == alone  # what it prints, and what it says on stderr
    assert pieces_read and pieces_read[0] > 20
    assert "--contact" not in command or "no contact 999999" in alone.err


def test_a_contact_that_fails_to_score_is_reported_and_the_others_scored(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, snapshot_file: Path
) -> None:
    """In one process and in the workers alike: the failure said on stderr, every other contact scored."""
    from sync.core import scoring
    from sync.core.model import Contact
    from sync.pipeline import parallel
    from sync.snapshot import pieces

    real = scoring.score_at
    broken = json.loads(snapshot_file.read_text(encoding="utf-8"))["contacts"][700]["id"]

    def failing(contact: Contact, events: Any, rules: Any, now_ms: int) -> Any:
        if contact.id == broken:
            raise RuntimeError("a rule that cannot be evaluated")
        return real(contact, events, rules, now_ms)

    monkeypatch.setattr(scoring, "score_at", failing)
    monkeypatch.setattr(pieces, "PARALLEL_BYTES", 0)
    monkeypatch.setattr(pieces, "PIECE_BYTES", 8192)
    argv = ["score", "--jsonl", "--config", CONFIG, "--snapshot", str(lines_of(snapshot_file, tmp_path)), "--now", NOW]
    said = []
    for processes in ("1", "2"):
        monkeypatch.setenv(parallel.PROCESSES_ENV, processes)
        assert main(argv) == 0
        said.append(capsys.readouterr())
    assert said[0] == said[1]
    assert f"contact {broken}: RuntimeError: a rule that cannot be evaluated" in said[0].err
    assert "1 contact could not be scored" in said[0].err
    ids = [json.loads(line)["contact_id"] for line in said[0].out.splitlines()]
    assert len(ids) == 1499 and broken not in ids
