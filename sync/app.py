"""The composition root: a portal's config -> its rules, HubSpot adapter, state store and clock.

The only place that picks concrete adapters; the pipeline and scheduler get them passed in.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, tzinfo
from pathlib import Path

import structlog

from sync.alerts import Alerter, notifier_for
from sync.config import PortalConfig, load_portal
from sync.config.checks import parse_duration
from sync.core.accounts import compile_accounts
from sync.core.rules import compile_ruleset
from sync.hubspot.portal import HubSpotPortal
from sync.hubspot.retry import RetryPolicy
from sync.live import Finding, live_check
from sync.observability import EmailHasher
from sync.pipeline import POLL_OVERLAP_MS, Portal, read_company_properties, read_properties
from sync.ports import Clock, StateStore, SystemClock
from sync.webhooks import CONVERSION_PROPERTIES

log = structlog.get_logger("leadsync.app")


@dataclass
class ConfiguredPortal(Portal):
    """A cycle's portal with its whole validated file: the service schedules and checks it by that file; the
    cycle itself sees only the `PortalSettings` part."""

    config: PortalConfig


def open_portal(config_file: str | Path, store: StateStore, policy: RetryPolicy | None = None) -> ConfiguredPortal:
    loaded = load_portal(config_file)
    rules = compile_ruleset(loaded.rules)
    accounts = compile_accounts(loaded.accounts, rules) if loaded.accounts is not None else None
    properties = read_properties(rules)
    if loaded.config.webhooks is not None:  # the fast path finds a new form submission by the contact's last one
        properties = sorted({*properties, *CONVERSION_PROPERTIES})
    hub = HubSpotPortal.from_config(
        loaded.config, properties, policy, company_properties=read_company_properties(rules, accounts)
    )
    # Start from what this portal already used today (earlier runs, other replicas): the reserve holds. The day is
    # UTC's until the identity check reads the portal's time zone (on_time_zone below).
    clock = SystemClock()
    pid = loaded.config.portal.id
    today = clock.now().astimezone(UTC).date().isoformat()
    hub.client.limiter.daily_used = store.add_api_calls(pid, today, 0)
    opened_with = sum(hub.client.calls.values())

    def on_time_zone(zone: tzinfo) -> None:
        # HubSpot resets its daily limit at midnight in the portal's time zone: count the budget by that day. The
        # calls made since this portal was opened are not in the store yet (their run records them when it ends).
        def local_day() -> str:
            return clock.now().astimezone(zone).date().isoformat()

        unrecorded = sum(hub.client.calls.values()) - opened_with
        hub.client.limiter.count_by(local_day, store.add_api_calls(pid, local_day(), 0) + unrecorded)

    return ConfiguredPortal(
        config=loaded.config,
        rules=rules,
        source=hub,
        writer=hub,
        store=store,
        clock=clock,
        api_calls=lambda: dict(hub.client.calls),
        headroom=hub.client.limiter.headroom,
        after_run=alerter(loaded.config, store, clock),
        bind_stop=hub.watch_stop,
        log_email=EmailHasher.for_installation(store.log_key),
        on_time_zone=on_time_zone,
        accounts=accounts,
        companies=hub,
        company_writer=hub,
        poll_overlap_ms=1000 * (parse_duration(loaded.config.forms.poll_overlap) or POLL_OVERLAP_MS // 1000),
    )


def alerter(config: PortalConfig, store: StateStore, clock: Clock) -> Alerter | None:
    """The portal's alerts hook, or None without an `alerts:` section."""
    alerts = config.alerts
    if alerts is None:
        return None
    notifier = notifier_for(alerts, os.environ, config.portal.name)
    return Alerter(config, alerts, store, notifier, clock)


def check_live(portal: ConfiguredPortal) -> list[Finding]:
    """The live check of a portal the service opened (read-only, through its own client and limits)."""
    if not isinstance(portal.source, HubSpotPortal):
        return []
    accounts = portal.accounts.spec if portal.accounts is not None else None
    now_ms = int(portal.clock.now().timestamp() * 1000)
    return live_check(portal.config, portal.rules, portal.source, now_ms, accounts=accounts)


def open_reader(
    config: PortalConfig, properties: Sequence[str], company_properties: Sequence[str] = ()
) -> HubSpotPortal:
    """The portal's HubSpot adapter for the read-only operator tools (explain, plan, report)."""
    return HubSpotPortal.from_config(config, properties, company_properties=company_properties)
