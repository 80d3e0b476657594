"""The `accounts:` section: company fit rules, the contacts' roll-up and `contacts:` rules, and the company
properties leadsync writes (docs/SCORING.md section 6).

A company has properties and contacts, nothing else: a rule on it may test its properties only (no events, no
email or list tests, which would silently never match). What a company's contacts did is asked through a
`contacts:` rule, whose `where` is an ordinary contact condition.
"""

from __future__ import annotations

from sync.config.checks.conditions import EVENT_FIELDS, PROPERTY_FIELDS, condition, key
from sync.config.checks.grades import grades as build_grades
from sync.config.checks.problems import Problems
from sync.config.checks.rules import clamp as clamp_of
from sync.config.checks.rules import rule as build_rule
from sync.config.schema import AccountFitModel, AccountRuleModel, AccountsModel, CountModel, PortalConfig
from sync.config.walk import (
    OUTPUT_KINDS,
    is_hubspot_company_property,
    model_entries,
    output_fields,
    property_reads,
)
from sync.core import conditions as c
from sync.core.accounts import (
    AccountEngagement,
    AccountProperties,
    AccountRule,
    AccountSpec,
    ContactsRule,
)
from sync.core.rules import BandRule, ConditionRule, MapRule, Rule, RuleGroup, RuleSetSpec, to_cents
from sync.yamlsource import Path_, path_text

ROOT: Path_ = ("accounts",)
_CONTACT_ONLY = {
    c.EventCondition: "events",
    c.EmailDomainIn: "email address",
    c.FreeMail: "email address",
    c.EmailIn: "email address",
    c.ContactIdIn: "contact id",
    c.InList: "list memberships",
}
# What a `contacts:` rule may carry besides `contacts`: its id, points and a `when` on the company.
_NOT_ON_CONTACTS_RULE = (
    "property", "event", "map", "default", "missing", "bands", "per", "max", "half_life_days", "within_days",
    "email_domain_in", "free_mail", "emails", "contact_ids", "hubspot_list", "all", "any", "not_",
    *PROPERTY_FIELDS, *EVENT_FIELDS,
)  # fmt: skip


def accounts(p: Problems, a: AccountsModel) -> AccountSpec | None:
    """The core's account spec (without its version, which covers the whole file), or None with problems."""
    before = len(p)
    ids: set[str] = set()
    fit = _fit(p, a.fit, ids)
    engagement = _engagement(p, a, ids)
    clamp = clamp_of(p, a.total, ROOT)
    grades = build_grades(p, a.grades, (*ROOT, "grades")) if a.grades is not None else None
    _check_grades_reachable(p, a)
    if len(p) > before:
        return None
    return AccountSpec(
        fit=fit,
        engagement=engagement,
        clamp=clamp,
        grades=grades,
        properties=AccountProperties(**a.properties.model_dump()),
    )


def _group_bounds(p: Problems, g: AccountFitModel, path: Path_) -> tuple[int | None, int | None]:
    if g.max is not None and g.min is not None and g.min > g.max:
        p.error((*path, "min"), "min is above max")
    return (to_cents(g.max) if g.max is not None else None, to_cents(g.min) if g.min is not None else None)


def _fit(p: Problems, g: AccountFitModel, ids: set[str]) -> RuleGroup:
    path = (*ROOT, "fit")
    rules: list[Rule] = []
    for i, r in enumerate(g.rules):
        here = (*path, "rules", i)
        _unique(p, r, here, ids)
        if r.contacts is not None:
            p.error(
                (*here, "contacts"),
                "a contacts rule belongs in accounts.engagement: fit reads the company's own properties",
            )
            continue
        built = _company_rule(p, r, here)
        if built is not None:
            rules.append(built)
    high, low = _group_bounds(p, g, path)
    return RuleGroup("fit", tuple(rules), high, low)


def _engagement(p: Problems, a: AccountsModel, ids: set[str]) -> AccountEngagement:
    path = (*ROOT, "engagement")
    rules: list[AccountRule] = []
    for i, r in enumerate(a.engagement.rules):
        here = (*path, "rules", i)
        _unique(p, r, here, ids)
        built = _contacts_rule(p, r, here) if r.contacts is not None else _company_rule(p, r, here)
        if built is not None:
            rules.append(built)
    high, low = _group_bounds(p, a.engagement, path)
    return AccountEngagement(a.engagement.rollup, tuple(rules), high, low)


def _unique(p: Problems, r: AccountRuleModel, here: Path_, ids: set[str]) -> None:
    if r.id in ids:
        p.error((*here, "id"), f"duplicate rule id {r.id!r}")
    ids.add(r.id)


def _company_rule(p: Problems, r: AccountRuleModel, here: Path_) -> Rule | None:
    """A map, bands or condition rule on the company's properties."""
    if r.event is not None:
        p.error(
            (*here, "event"),
            "a company has no events: count its contacts' events with a contacts rule "
            "(contacts: {where: {event: ...}}) in accounts.engagement",
        )
        return None
    built = build_rule(p, r, here)
    if built is None:
        return None
    for cond, where in _conditions_of(built, here):
        _company_only(p, cond, where)
    return built


def _conditions_of(rule: Rule, here: Path_) -> list[tuple[c.Condition, Path_]]:
    found: list[tuple[c.Condition, Path_]] = []
    if rule.when is not None:
        found.append((rule.when, (*here, "when")))
    if isinstance(rule, ConditionRule):
        found.append((rule.condition, here))
    return found


def _company_only(p: Problems, cond: c.Condition, where: Path_) -> None:
    for node in c.walk(cond):
        what = _CONTACT_ONLY.get(type(node))
        if what is not None:
            p.error(
                where,
                f"a company has no {what}: this test would never match; test the company's contacts with a "
                "contacts rule in accounts.engagement",
            )
            return


def _contacts_rule(p: Problems, r: AccountRuleModel, here: Path_) -> ContactsRule | None:
    """Points when enough of the company's contacts match `contacts.where` (no count: at least one)."""
    assert r.contacts is not None
    before = len(p)
    for name in _NOT_ON_CONTACTS_RULE:
        if getattr(r, name) is not None:
            p.error(
                (*here, key(name)),
                f"a contacts rule takes no {key(name)}; the test of each contact goes under contacts.where",
            )
    if r.points is None:
        p.error((*here, "points"), "a contacts rule needs points")
    when = condition(p, r.when, (*here, "when")) if r.when is not None else None
    if when is not None:
        _company_only(p, when, (*here, "when"))
    where = condition(p, r.contacts.where, (*here, "contacts", "where"))
    count = r.contacts.count or CountModel()
    spec = c.CountSpec(count.at_least, count.at_most, count.exactly, count.between)
    lo, hi = spec.bounds()
    if hi is not None and lo > hi:
        p.error((*here, "contacts", "count"), "can never match: the count bounds exclude every number")
    if len(p) > before or where is None or r.points is None:
        return None
    return ContactsRule(r.id, where, to_cents(r.points), spec, when)


def _check_grades_reachable(p: Problems, a: AccountsModel) -> None:
    if a.grades is None:
        return
    for part, cap in (("fit", a.fit.max), ("engagement", a.engagement.max)):
        for i, band in enumerate(getattr(a.grades, part)):
            if cap is not None and band.min is not None and band.min > cap:
                p.error(
                    (*ROOT, "grades", part, i, "min"),
                    f"can never be reached: the account's {part} is capped at {cap:g}",
                )


# --- the company properties leadsync writes ----------------------------------------------------------


def check_account_outputs(p: Problems, cfg: PortalConfig, spec: AccountSpec) -> None:
    """Account outputs must be leadsync's own company properties: no HubSpot default one (a company's
    lifecycle stage above all), each kind its own name, none a contact model also writes, none an account
    rule reads."""
    assert cfg.accounts is not None
    contact_outputs = {
        name: where for mpath, m in model_entries(cfg) for _, name, where in output_fields(cfg, mpath, m)
    }
    read = _company_reads(spec)
    seen: dict[str, str] = {}
    for kind in OUTPUT_KINDS:
        name = getattr(cfg.accounts.properties, kind)
        where = (*ROOT, "properties", kind)
        if is_hubspot_company_property(name):
            p.error(
                where,
                f"{name} is a HubSpot default company property: leadsync writes only company properties of its "
                f"own; choose another name (e.g. ls_account_{kind})",
            )
        elif name in seen:
            p.error(where, f"{name} is also the account's {seen[name]}: each output needs a name of its own")
        elif name in contact_outputs:
            # HubSpot keeps contact and company properties apart, but leadsync's history, reports and
            # contacts.where name a property without its object: one name means one thing.
            p.error(
                where,
                f"{name} is also a contact output ({path_text(contact_outputs[name])}): give account outputs "
                f"names of their own (e.g. ls_account_{kind})",
            )
        elif name in read:
            p.error(
                where,
                f"{name} is read by {path_text(read[name])}: an output a rule reads would feed leadsync's own "
                "writes back into the score; choose another name",
            )
        seen.setdefault(name, kind)


def _company_reads(spec: AccountSpec) -> dict[str, Path_]:
    """Company property -> the first account rule that reads it (`company.x` on a company is its own x)."""
    reads: dict[str, Path_] = {}
    groups = (("fit", spec.fit.rules), ("engagement", spec.engagement.rules))
    for part, rules in groups:
        for i, rule in enumerate(rules):
            here = (*ROOT, part, "rules", i)
            names: list[str] = []
            if isinstance(rule, MapRule | BandRule):
                names.append(rule.property)
            conds = [rule.when] if rule.when is not None else []
            if isinstance(rule, ConditionRule):
                conds.append(rule.condition)
            names += [n.property for cond in conds for n in c.walk(cond) if isinstance(n, c.PropertyTest)]
            for name in names:
                reads.setdefault(c.company_property(name) or name, here)
    return reads


def check_account_outputs_not_read_by_contacts(
    p: Problems, cfg: PortalConfig, contact_spec: RuleSetSpec, spec: AccountSpec
) -> None:
    """A contact rule reading `company.<account output>` would feed the account pass's writes into contact
    scores, which feed the account pass: a loop."""
    outputs = {getattr(spec.properties, kind): kind for kind in OUTPUT_KINDS}
    for where, name in property_reads(cfg, contact_spec):
        company_name = c.company_property(name)
        if company_name in outputs:
            p.error(
                where,
                f"{name} is the account's {outputs[company_name]} (accounts.properties): account scores are "
                "computed from contact scores, so a contact rule may not read them",
            )
