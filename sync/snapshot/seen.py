"""A set of 64-bit digests as long as the portal, kept on disk: what a one-pass reader remembers of each contact.

A streaming reader must tell a contact given twice (by id, or by email) however far apart the two are, so it
remembers every id and email it has accepted. Held in memory that is ~70 bytes a key: a million contacts'
ids and emails are 150 MB, the one thing left growing with the portal. `DigestSet` keeps the newest keys in a
small in-memory set and moves them, a block at a time, into a temporary SQLite file (an integer primary key
each). A fixed-size Bloom filter answers "never seen" (nearly every lookup, in a portal without duplicates)
without touching the file; only a filter hit is confirmed on disk, so every repeat is still found, exactly.
Memory stays bounded whatever the portal's size: the filter, the block and SQLite's page cache.
"""

from __future__ import annotations

import sqlite3
from typing import Final

BLOCK: Final = 50_000  # keys held in memory before they are written to the file in one statement
FILTER_BITS: Final = 1 << 24  # 2 MiB: about 1 lookup in 300 reaches the file at a million keys, 1 in 20 at 5M
_MASK: Final = (1 << 64) - 1
_SIGNED: Final = 1 << 63


class DigestSet:
    """A set of 64-bit unsigned integers (digests) in bounded memory; `close` removes its file."""

    def __init__(self, block: int = BLOCK, filter_bits: int = FILTER_BITS) -> None:
        self.block = block
        self._bits = bytearray(filter_bits // 8)
        self._mask = filter_bits - 1  # a power of two
        if filter_bits & self._mask or filter_bits < 8:
            raise ValueError(f"filter_bits must be a power of two of at least 8, not {filter_bits}")
        self._fresh: set[int] = set()
        self._db: sqlite3.Connection | None = None
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def __contains__(self, key: object) -> bool:
        return isinstance(key, int) and self._held(key, _positions(key, self._mask))

    def add(self, key: int) -> None:
        positions = _positions(key, self._mask)
        if self._held(key, positions):
            return
        self._len += 1
        bits = self._bits
        for bit in positions:
            bits[bit >> 3] |= 1 << (bit & 7)
        self._fresh.add(key)
        if len(self._fresh) >= self.block:
            self._flush()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()  # the temporary file goes with the connection
            self._db = None
        self._fresh.clear()

    def _held(self, key: int, positions: tuple[int, ...]) -> bool:
        bits = self._bits
        if not all(bits[bit >> 3] & (1 << (bit & 7)) for bit in positions):
            return False  # never added: nearly every lookup in a portal without duplicates ends here
        if key in self._fresh:
            return True
        if self._db is None:
            return False
        return self._db.execute("SELECT 1 FROM seen WHERE k = ?", (_signed(key),)).fetchone() is not None

    def _flush(self) -> None:
        if self._db is None:
            # An empty name is a private temporary database on disk, deleted when the connection closes.
            self._db = sqlite3.connect("")
            self._db.execute("PRAGMA journal_mode = OFF")
            self._db.execute("PRAGMA synchronous = OFF")
            self._db.execute("CREATE TABLE seen (k INTEGER PRIMARY KEY)")
        with self._db:
            self._db.executemany("INSERT OR IGNORE INTO seen VALUES (?)", ((_signed(k),) for k in sorted(self._fresh)))
        self._fresh.clear()


def _signed(key: int) -> int:
    """SQLite's integers are signed 64-bit: the digest's bits as one."""
    key &= _MASK
    return key - (1 << 64) if key >= _SIGNED else key


def _positions(key: int, mask: int) -> tuple[int, int, int]:
    """The three filter bits of a key: rotations of the digest itself (already uniformly spread), no hashing again."""
    key &= _MASK
    return key & mask, ((key >> 21) | (key << 43)) & mask, ((key >> 42) | (key << 22)) & mask
