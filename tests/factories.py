"""Plain values for tests: the reference config, contacts and events at known ages."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from sync.config import build_portal, load_portal
from sync.core.conditions import DAY_MS
from sync.core.model import Contact, EmailEvent, FormSubmission
from sync.core.rules import RuleSet, compile_ruleset
from sync.yamlsource import load_yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config" / "portals" / "example.yaml"
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


@cache
def _example_data() -> Any:
    return load_yaml(EXAMPLE)[0]


def example_data() -> dict[str, Any]:
    """A fresh copy of the reference config as a dict, to adjust per test."""
    data: dict[str, Any] = copy.deepcopy(_example_data())
    return data


@cache
def example_rules() -> RuleSet:
    return compile_ruleset(load_portal(EXAMPLE).rules)


def rules_from(data: dict[str, Any]) -> RuleSet:
    return compile_ruleset(build_portal(data, Path("test.yaml")).rules)


def unclamped(data: dict[str, Any] | None = None) -> dict[str, Any]:
    data = data if data is not None else example_data()
    del data["model"]["total"]
    return data


def ms_ago(days: float) -> int:
    return NOW_MS - int(days * DAY_MS)


def contact(
    cid: str = "1",
    email: str = "jane@buyer-corp.com",
    created_days_ago: float = 10,
    stage: str = "",
    lists: frozenset[int] = frozenset(),
    **props: str,
) -> Contact:
    return _contact(cid, email, created_days_ago, stage, lists, props)


def contact_with(props: Mapping[str, str]) -> Contact:
    """contact(**props) for a row of a test's table (typed: a row's values are never the other arguments)."""
    values = dict(props)
    return _contact("1", values.pop("email", "jane@buyer-corp.com"), 10, "", frozenset(), values)


def _contact(
    cid: str, email: str, created_days_ago: float, stage: str, lists: frozenset[int], props: Mapping[str, str]
) -> Contact:
    return Contact(
        id=cid,
        properties={"email": email, **props},
        email=email.lower(),
        created_at_ms=ms_ago(created_days_ago),
        lifecycle_stage=stage,
        list_ids=lists,
    )


def form(
    eid: str, days_ago: float, name: str = "Ebook download", form_id: str = "f1", page_url: str = ""
) -> FormSubmission:
    return FormSubmission(
        event_id=eid,
        at_ms=ms_ago(days_ago),
        email="jane@buyer-corp.com",
        form_id=form_id,
        form_name=name,
        page_url=page_url,
    )


def email_event(
    eid: str, kind: str, days_ago: float, filtered: bool = False, url: str = "", campaign: str = "c1"
) -> EmailEvent:
    return EmailEvent(
        event_id=eid,
        kind=kind,
        at_ms=ms_ago(days_ago),
        email="jane@buyer-corp.com",
        campaign_id=campaign,
        url=url,
        filtered=filtered,
    )


def sandbox_config(base_url: str, token_env: str) -> dict[str, Any]:
    """The reference config pointed at a local sandbox, with rate limits that never slow a test."""
    config: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    config["portal"].update(base_url=base_url, token_env=token_env)
    config["portal"]["rate_limit"] = {"per_10s": 100_000, "daily": 100_000_000, "search_per_second": 10_000}
    return config


def validate_live(
    url: str, token_env: str, folder: Path, change: Callable[[dict[str, Any]], None]
) -> tuple[int, list[str]]:
    """`leadsync validate --live` on the sandbox config at `url`, changed by `change`: the exit status and the
    findings (`level: field: message`, the file's name taken off)."""
    import contextlib
    import io

    from sync.cli import main

    config = sandbox_config(url, token_env)
    change(config)
    file = folder / "live.yaml"
    file.write_text(yaml.safe_dump(config, sort_keys=False))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["validate", "--live", str(file)])
    lines = err.getvalue().splitlines()
    return code, [line.removeprefix(f"{file}: ") for line in lines if line.startswith(f"{file}: ")]
