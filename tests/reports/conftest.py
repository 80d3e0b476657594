"""Shared inputs of the report tests: synthetic portals written as snapshot files."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sync.sandbox.generator import DEFAULT_NOW_MS, generate_portal
from tests.factories import EXAMPLE

CONFIG = str(EXAMPLE)
EXAMPLE_PORTAL_ID = 12345678  # the reference config's portal: no "snapshot of another portal" warning
NOW_MS = DEFAULT_NOW_MS  # the generator's "now": every generated event is in the past
NOW = datetime.fromtimestamp(NOW_MS / 1000, UTC).isoformat()


def write_snapshot(path: Path, contacts: int, seed: int, *, planted_signal: bool = True) -> Path:
    portal = generate_portal(contacts, seed, planted_signal=planted_signal, portal_id=EXAMPLE_PORTAL_ID)
    path.write_text(json.dumps(portal.snapshot()), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def snapshot_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1,500-contact portal with the planted signal (this seed's MQL threshold draws a too-high warning)."""
    return write_snapshot(tmp_path_factory.mktemp("snapshots") / "portal.json", 1500, 12)
