"""One `leadsync run` per SQLite file: SQLite is for one replica.

Two services on one SQLite file would both take every lease (SQLite has no row locks to share the portals by,
and its writers queue behind one another), so the second is refused at start. The claim is an exclusive lock on a
file beside the database, held for the life of the process: the operating system drops it when the process ends,
however it ends, so a crash never leaves a stale claim behind. PostgreSQL stores are shared by design.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from sync.errors import ConfigError, ConfigProblem
from sync.store.schema import database_url


@contextlib.contextmanager
def single_replica(url: str | None) -> Iterator[None]:
    """Hold the SQLite store's service claim while the block runs; ConfigError when another process holds it."""
    parsed = database_url(url)
    if not parsed.drivername.startswith("sqlite"):
        yield
        return
    database = Path(str(parsed.database))
    claim = database.with_name(database.name + ".run-lock")
    if not claim.parent.is_dir():  # the store itself says what is wrong with its path
        yield
        return
    fd = os.open(claim, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                [
                    ConfigProblem(
                        str(database),
                        None,
                        "",
                        "another leadsync run already serves this SQLite state store: SQLite is for one replica; "
                        "for several, give every replica the same PostgreSQL store (--db postgresql://...)",
                    )
                ]
            ) from None
        yield
    finally:
        os.close(fd)  # closing drops the lock
