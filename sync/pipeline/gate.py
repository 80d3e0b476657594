"""Do no harm to a portal: what leadsync owns and may write, and the checks every write passes first.

The token's portal is the file's portal (verify_identity), the file agrees with the live portal (check_live), a
write names only properties leadsync owns (check_writes, check_company_writes), and a run under a lease sends only
while its fence is current (check_lease); the properties are created or adopted once per Portal object before
anything is written (ensure_properties, ensure_company_properties).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import structlog

from sync.core.accounts import AccountSpec, CompiledAccounts
from sync.core.model import PropertyUpdate, StageChange
from sync.core.rules import Grades, ModelSpec, RuleSet
from sync.core.wire import LIFECYCLE_STAGE
from sync.errors import LeaseLostError, LiveCheckError, UnownedWriteError, WrongPortalError
from sync.pipeline.portal import Portal, RunScope
from sync.ports import PropertySpec

log = structlog.get_logger("leadsync.pipeline")


def owned_properties(rules: RuleSet) -> tuple[str, list[PropertySpec]]:
    """The HubSpot property group and properties every model and interest score of this rule set writes."""
    specs: dict[str, PropertySpec] = {}
    group = ""
    for model in rules.spec.models:
        props = model.properties
        group = group or props.group
        grades = _grade_labels(model)
        for spec in (
            PropertySpec(props.score, "Lead score (leadsync)", "number"),
            PropertySpec(props.fit, "Fit score (leadsync)", "number"),
            PropertySpec(props.engagement, "Engagement score (leadsync)", "number"),
            PropertySpec(props.grade, "Lead grade (leadsync)", "enumeration", grades) if grades else None,
            PropertySpec(props.reasons, "Score reasons (leadsync)", "string"),
            PropertySpec(props.scored_at, "Scored at (leadsync)", "datetime"),
        ):
            if spec is not None and spec.name not in specs:
                specs[spec.name] = replace(spec, adopted=spec.name in props.adopt)
    for interest in rules.spec.interests:  # in the same group; never a stage
        out = interest.properties
        specs[out.score] = PropertySpec(out.score, f"Interest score: {interest.name} (leadsync)", "number")
        if out.reasons is not None:
            specs[out.reasons] = PropertySpec(out.reasons, f"Interest reasons: {interest.name} (leadsync)", "string")
    predictive = rules.spec.predictive
    if predictive is not None:  # the learned likelihood's two outputs, in the same group
        for spec in (
            PropertySpec(predictive.likelihood_property, "Likelihood to convert (leadsync)", "number"),
            PropertySpec(predictive.factors_property, "Likelihood factors (leadsync)", "string"),
        ):
            specs.setdefault(spec.name, spec)
    return group, list(specs.values())


def writable_properties(rules: RuleSet) -> frozenset[str]:
    """What leadsync may write: the outputs it owns (created in its group, or adopted), and the lifecycle stage
    when a model manages stages."""
    _, owned = owned_properties(rules)
    stages = any(m.lifecycle.mode != "off" for m in rules.spec.models)
    return frozenset({s.name for s in owned} | ({LIFECYCLE_STAGE} if stages else set()))


def check_writes(portal: Portal, updates: Sequence[PropertyUpdate], stages: Sequence[StageChange]) -> None:
    """The one gate every write passes: the portal's identity was checked and every property is leadsync's own.

    Raises UnownedWriteError (nothing sent) otherwise."""
    names = {name for u in updates for name in u.properties} | ({LIFECYCLE_STAGE} if stages else set())
    _gate(portal, f"portal {portal.id}", "", names, writable_properties(portal.rules), "the properties")


def check_lease(scope: RunScope, where: str, *, ask_store: bool = True) -> None:
    """The fence part of the gate: a run under a lease sends (and starts) only while the lease is still its own.

    Raises LeaseLostError when the local bound of the lease has passed (this process was paused, or renewals
    failed) or, with `ask_store`, when the store says the lease moved on (another epoch, another holder, expired).
    Without a lease (tests, tools) there is nothing to check."""
    lease = scope.lease
    if lease is None:
        return
    if not lease.trusted() or (ask_store and not scope.portal.store.check_fence(lease.fence)):
        raise LeaseLostError(lease.fence.portal_id, lease.fence.epoch, where)


def _gate(portal: Portal, where: str, what: str, names: set[str], allowed: frozenset[str], owned: str) -> None:
    """The gate itself, for contacts and companies: refuse before the identity check, and any name not owned."""
    if not portal.identity_verified:
        raise UnownedWriteError(f"refused to write {where} before the token's own portal was checked: nothing was sent")
    foreign = sorted(names - allowed)
    if foreign:
        raise UnownedWriteError(
            f"refused to write {what}{', '.join(foreign)}: leadsync writes only {owned} it owns "
            f"({', '.join(sorted(allowed)) or 'none'}); nothing was sent"
        )


def owned_company_properties(spec: AccountSpec) -> tuple[str, list[PropertySpec]]:
    """The HubSpot company property group and properties the `accounts:` section writes."""
    props = spec.properties
    grades = _labels(spec.grades)
    specs = [
        PropertySpec(props.score, "Account score (leadsync)", "number"),
        PropertySpec(props.fit, "Account fit (leadsync)", "number"),
        PropertySpec(props.engagement, "Account engagement (leadsync)", "number"),
        *([PropertySpec(props.grade, "Account grade (leadsync)", "enumeration", grades)] if grades else []),
        PropertySpec(props.reasons, "Account score reasons (leadsync)", "string"),
        PropertySpec(props.scored_at, "Account scored at (leadsync)", "datetime"),
    ]
    return props.group, specs


def company_writable_properties(accounts: CompiledAccounts | None) -> frozenset[str]:
    """The company properties leadsync may write: its account outputs, and never a company's lifecycle stage."""
    if accounts is None:
        return frozenset()
    _, owned = owned_company_properties(accounts.spec)
    return frozenset(s.name for s in owned) - {LIFECYCLE_STAGE}


def check_company_writes(portal: Portal, updates: Sequence[PropertyUpdate]) -> None:
    """check_writes for companies: the portal's identity was checked and every property is an account output
    leadsync owns. Raises UnownedWriteError (nothing sent) otherwise."""
    names = {name for u in updates for name in u.properties}
    allowed = company_writable_properties(portal.accounts)
    _gate(portal, f"companies of portal {portal.id}", "company properties ", names, allowed, "the account properties")


def read_company_properties(rules: RuleSet, accounts: CompiledAccounts | None) -> list[str]:
    """Company properties to pull: what contact rules read as `company.<property>`, what account rules read,
    and the account outputs (to write only what differs)."""
    names = set(rules.company_properties_read)
    if accounts is not None:
        names |= accounts.company_properties_read
        names |= {s.name for s in owned_company_properties(accounts.spec)[1]}
    return sorted(names)


def verify_identity(portal: Portal) -> None:
    """Refuse a token of another portal (WrongPortalError), once per Portal object; keep the portal's time zone."""
    if portal.identity_verified:
        return
    account = portal.source.account_info()
    if account.portal_id != portal.id:
        raise WrongPortalError(account.portal_id, portal.id)
    portal.identity_verified = True
    zone = time_zone(account.time_zone)
    if zone is None:
        log.warning("unknown_time_zone", portal=portal.config.portal.name, time_zone=account.time_zone, using="UTC")
    portal.time_zone = zone.key if isinstance(zone, ZoneInfo) else "UTC"
    portal.on_time_zone(zone or UTC)


def time_zone(name: str) -> tzinfo | None:
    """The zone of an IANA name (HubSpot's `timeZone`), or None when this system does not know it."""
    key = name.strip()
    if key.upper() in ("UTC", "ETC/UTC", "GMT"):
        return UTC
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    known = {zone.lower(): zone for zone in available_timezones()}  # older portals say "us/eastern"
    try:
        return ZoneInfo(known[key.lower()]) if key.lower() in known else None
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def budget_day(portal: Portal, at: datetime) -> str:
    """The day (YYYY-MM-DD) HubSpot counts a call made at `at` against: the portal's local date."""
    return at.astimezone(time_zone(portal.time_zone) or UTC).date().isoformat()


def check_live(portal: Portal) -> None:
    """The service's live check, once per Portal object; its errors pause the portal (LiveCheckError)."""
    if portal.live_check is None or portal.live_verdict == "ok":
        return
    if not portal.live_verdict:
        portal.live_verdict = portal.live_check() or "ok"
    if portal.live_verdict != "ok":
        raise LiveCheckError(portal.live_verdict)


def _grade_labels(model: ModelSpec) -> tuple[str, ...]:
    return _labels(model.grades)


def _labels(grades: Grades | None) -> tuple[str, ...]:
    if grades is None:
        return ()
    return tuple(grades.label.format(fit=f.grade, engagement=e.grade) for f in grades.fit for e in grades.engagement)


def read_properties(rules: RuleSet) -> list[str]:
    """Contact properties to pull: what the rules read, what we own, and the stage."""
    _, owned = owned_properties(rules)
    return sorted({*rules.properties_read, *(s.name for s in owned), LIFECYCLE_STAGE})


def ensure_properties(portal: Portal) -> None:
    """Create (or adopt) the contact properties leadsync writes, once per Portal object."""
    if portal.properties_ready:
        return
    group, specs = owned_properties(portal.rules)
    portal.writer.ensure_properties(group, "Lead scoring (leadsync)", specs)
    portal.properties_ready = True


def ensure_company_properties(portal: Portal) -> None:
    """Create (or adopt) the account properties leadsync writes, once per Portal object (with `accounts:` only)."""
    if portal.company_properties_ready or portal.accounts is None or portal.company_writer is None:
        return
    group, specs = owned_company_properties(portal.accounts.spec)
    portal.company_writer.ensure_company_properties(group, "Lead scoring (leadsync)", specs)
    portal.company_properties_ready = True
