"""Sandboxes on 127.0.0.1:0 for the tests; all of them close at teardown."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sync.sandbox import Portal, Sandbox
from tests.fakes import ManualClock
from tests.sandbox.support import TOKEN, Api, build_portal

MakeSandbox = Callable[..., Sandbox]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_800_000_000.0)  # later than every record of the hand-made portal


@pytest.fixture
def make_sandbox(clock: ManualClock) -> Iterator[MakeSandbox]:
    """Start sandboxes (default: the hand-made portal, limits off, the fake clock); all close at teardown."""
    started: list[Sandbox] = []

    def make(portal: Portal | None = None, **options: Any) -> Sandbox:
        options.setdefault("rate_limit", "off")
        options.setdefault("clock", clock.seconds)
        sandbox = Sandbox(portal if portal is not None else build_portal(), port=0, token=TOKEN, **options).start()
        started.append(sandbox)
        return sandbox

    yield make
    for sandbox in started:
        sandbox.close()


@pytest.fixture
def sandbox(make_sandbox: MakeSandbox) -> Sandbox:
    return make_sandbox()


@pytest.fixture
def api(sandbox: Sandbox) -> Iterator[Api]:
    client = Api(sandbox)
    yield client
    client.close()
