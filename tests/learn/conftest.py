"""Shared inputs of the training tests: one synthetic portal with the planted signal, as a snapshot file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sync.sandbox.generator import DEFAULT_NOW_MS, generate_portal

CONTACTS, SEED = 6000, 2
EXAMPLE_PORTAL_ID = 12345678
DAY_MS = 86_400_000
AS_OF_MS = DEFAULT_NOW_MS - 180 * DAY_MS
AS_OF = "2026-05-05T12:00:00Z"  # AS_OF_MS
HORIZON_DAYS = 180


@pytest.fixture(scope="session")
def planted_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6,000-contact portal with the planted signal (energy managers and checklist downloads convert)."""
    path = tmp_path_factory.mktemp("learn") / "portal.json"
    portal = generate_portal(CONTACTS, SEED, portal_id=EXAMPLE_PORTAL_ID)
    path.write_text(json.dumps(portal.snapshot()), encoding="utf-8")
    return path
