"""The digest set on disk: every key found again, however many were added, in bounded memory."""

from __future__ import annotations

import random

import pytest

from sync.snapshot.seen import DigestSet


def test_keys_are_found_again_in_memory_and_on_disk() -> None:
    rng = random.Random(3)
    keys = [rng.getrandbits(64) for _ in range(2500)]
    seen = DigestSet(block=100, filter_bits=1 << 12)  # a small filter: many hits go to the file
    for key in keys:
        seen.add(key)
    assert len(seen) == len(keys)
    assert all(key in seen for key in keys)  # 2400 of them from the file, 100 still in memory
    others = [rng.getrandbits(64) for _ in range(2500)]
    assert not any(key in seen for key in others)
    seen.close()


def test_a_key_added_twice_is_counted_once() -> None:
    seen = DigestSet(block=2)
    for key in (5, 6, 5, 7, 6, 2**64 - 1, 2**64 - 1):
        seen.add(key)
    assert len(seen) == 4
    assert 2**64 - 1 in seen  # the top bit set: stored as a negative SQLite integer
    assert 2**63 not in seen
    seen.close()


@pytest.mark.parametrize("bits", [0, 12, 3 << 10])
def test_the_filter_size_must_be_a_power_of_two(bits: int) -> None:
    with pytest.raises(ValueError, match="power of two"):
        DigestSet(filter_bits=bits)
