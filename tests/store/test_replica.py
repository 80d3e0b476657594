"""SQLite is for one replica: a second `leadsync run` on the same SQLite file is refused at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.cli import main
from sync.errors import ConfigError
from sync.store.replica import single_replica


def test_a_second_claim_on_one_sqlite_file_is_refused_until_the_first_ends(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    with single_replica(url):
        with pytest.raises(ConfigError) as refused, single_replica(url):
            pass
        assert "another leadsync run already serves this SQLite state store" in str(refused.value)
        with single_replica(f"sqlite:///{tmp_path / 'other.db'}"):
            pass  # another file is another store
    with single_replica(url):
        pass  # the first claim ended with its block


def test_postgresql_stores_are_shared_by_replicas() -> None:
    url = "postgresql://postgres@127.0.0.1:5432/test"
    with single_replica(url), single_replica(url):
        pass  # no claim: replicas share a PostgreSQL store through leases


def test_leadsync_run_on_a_sqlite_file_another_run_serves_exits_2_saying_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    folder = tmp_path / "portals"
    folder.mkdir()
    with single_replica(url):  # the first service
        code = main(["run", "--config-dir", str(folder), "--db", url, "--listen", "off", "--log-format", "json"])
    assert code == 2
    err = capsys.readouterr().err
    assert "SQLite is for one replica" in err and "PostgreSQL" in err
