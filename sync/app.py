"""The composition root: a portal's config -> its rules, HubSpot adapter, state store and clock.

The only place that picks concrete adapters; the pipeline and scheduler get them passed in.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sync.config import load_portal
from sync.core.rules import compile_ruleset
from sync.hubspot.portal import HubSpotPortal
from sync.hubspot.retry import RetryPolicy
from sync.pipeline import Portal, read_properties
from sync.ports import StateStore


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def open_portal(config_file: str | Path, store: StateStore, policy: RetryPolicy | None = None) -> Portal:
    loaded = load_portal(config_file)
    rules = compile_ruleset(loaded.rules)
    hub = HubSpotPortal.from_config(loaded.config, read_properties(rules), policy)
    # Start from what this portal already used today (earlier runs, other replicas): the reserve holds.
    today = datetime.now(UTC).date().isoformat()
    hub.client.limiter.daily_used = store.add_api_calls(loaded.config.portal.id, today, 0)
    return Portal(
        config=loaded.config,
        rules=rules,
        source=hub,
        writer=hub,
        store=store,
        clock=SystemClock(),
        api_calls=lambda: dict(hub.client.calls),
        headroom=hub.client.limiter.headroom,
    )
