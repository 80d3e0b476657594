"""Shared inputs of the report tests: synthetic portals written as snapshot files."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from sync.sandbox import Sandbox
from sync.sandbox.generator import DEFAULT_NOW_MS, generate_portal
from tests.factories import EXAMPLE, example_data, sandbox_config

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
    """A 1,500-contact portal with the planted signal."""
    return write_snapshot(tmp_path_factory.mktemp("snapshots") / "portal.json", 1500, 12)


HIGH_MQL_BAND_WIDTH = 20


@pytest.fixture(scope="session")
def high_mql_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference config with MQL at 70: on `snapshot_file`, in bands of 20, the 50-69 band converts well
    below that threshold while it catches few of the converters (a too-high warning)."""
    data = example_data()
    data["model"]["lifecycle"]["stages"][0]["min_score"] = 70
    path = tmp_path_factory.mktemp("configs") / "high-mql.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


LIVE_TOKEN_ENV = "LEADSYNC_REPORTS_TOKEN"
StartPortal = Callable[..., tuple[Sandbox, Path]]


@pytest.fixture
def sandbox_portal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StartPortal]:
    """Starts a sandbox serving a generated portal and writes the reference config pointed at it."""
    with ExitStack() as stack:

        def start(
            contacts: int, seed: int, *, clock: Callable[[], float] = time.time, **lifecycle: Any
        ) -> tuple[Sandbox, Path]:
            sb = stack.enter_context(Sandbox(generate_portal(contacts, seed), rate_limit="off", clock=clock))
            config = sandbox_config(sb.url, LIVE_TOKEN_ENV)
            config["model"]["lifecycle"].update(lifecycle)
            file = tmp_path / f"portal-{seed}.yaml"
            file.write_text(yaml.safe_dump(config), encoding="utf-8")
            monkeypatch.setenv(LIVE_TOKEN_ENV, sb.token)
            return sb, file

        yield start
