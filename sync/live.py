"""`validate --live`: a portal file checked against the portal it names, read-only.

Findings are errors (the file cannot work with this portal: the token's portal differs, a property a
rule reads or a list an exclusion names does not exist, a stage is not an option of lifecyclestage,
an account output property exists outside leadsync's group) or warnings (a test that cannot match the
property's type, a value that is not one of an enumeration's options, a form name no form has, a
segment no contact falls in). Company properties (`company.<property>`, the accounts section's rules)
are checked against the portal's company properties the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from sync.config import PortalConfig, Site, model_entries, property_reads, sites
from sync.core import conditions as c
from sync.core.accounts import AccountSpec, ContactsRule
from sync.core.rules import BandRule, ConditionRule, EventRule, MapRule, RuleSet
from sync.core.wire import LIFECYCLE_STAGE
from sync.errors import WrongPortalError
from sync.pipeline import with_lists
from sync.ports import CompanyPage, ContactPage, PropertyInfo
from sync.yamlsource import Path_, path_text

Level = Literal["error", "warning"]
SCAN_LIMIT = 5000  # contacts read to find each segment a member; a bounded, read-only scan
NUMERIC_OPS = frozenset({"gt", "gte", "lt", "lte"})
DATE_OPS = frozenset({"date_gt", "date_gte", "date_lt", "date_lte", "within_days", "older_than_days"})
TEXT_OPS = frozenset({"contains", "not_contains", "starts_with", "ends_with"})
VALUE_OPS = frozenset({"equals", "not_equals", "in", "not_in"})
NUMBER_TYPES = frozenset({"number"})
DATE_TYPES = frozenset({"datetime", "date"})
TEXT_TYPES = frozenset({"string", "enumeration", "phone_number"})
OPTION_TYPES = frozenset({"enumeration", "bool"})


@dataclass(frozen=True)
class Finding:
    level: Level
    field: str
    message: str

    def line(self, file: str) -> str:
        return f"{file}: {self.level}: {self.field}: {self.message}"


class LivePortal(Protocol):
    """What the live check reads (HubSpotPortal has it all)."""

    def account_portal_id(self) -> int: ...

    def property_definitions(self) -> dict[str, PropertyInfo]: ...

    def list_name(self, list_id: int) -> str | None: ...

    def forms(self) -> dict[str, str]: ...

    def contact_pages(self, after: str | None = None) -> Iterator[ContactPage]: ...

    def list_members(self, list_id: int) -> set[str]: ...

    def company_property_definitions(self) -> dict[str, PropertyInfo]: ...

    def company_pages(self, after: str | None = None) -> Iterator[CompanyPage]: ...


# A property's definition by the name a rule reads it with (`company.x` names a company property).
Lookup = Callable[[str], PropertyInfo | None]
ACCOUNT_OUTPUTS = ("score", "fit", "engagement", "grade", "reasons", "scored_at")


def identity_finding(config: PortalConfig, portal: LivePortal) -> Finding | None:
    actual = portal.account_portal_id()
    if actual == config.portal.id:
        return None
    return Finding("error", "portal.id", str(WrongPortalError(actual, config.portal.id)))


def live_check(
    config: PortalConfig,
    rules: RuleSet,
    portal: LivePortal,
    now_ms: int,
    scan_limit: int = SCAN_LIMIT,
    accounts: AccountSpec | None = None,
) -> list[Finding]:
    """Every finding for one file; stops after the identity check when the token is another portal's.
    `accounts`: the file's accounts section, whose rules and output properties are checked too."""
    wrong = identity_finding(config, portal)
    if wrong is not None:
        return [wrong]
    spec = rules.spec
    defs = portal.property_definitions()
    # Read only when something reads a company: a portal file without companies costs no extra call.
    company_defs = portal.company_property_definitions() if rules.company_properties_read or accounts else {}
    on_contact = _contact_lookup(defs, company_defs)
    all_sites = list(sites(config, spec))
    found = _missing(list(property_reads(config, spec)), on_contact)
    for site in all_sites:
        found += _type_findings(site, on_contact)
    if accounts is not None:
        found += _account_findings(config, rules, accounts, defs, company_defs)
        found += _no_companies(portal)
    found += _stage_findings(config, rules, defs)
    found += _list_findings(all_sites, portal)
    found += _form_findings(all_sites, portal)
    found += _segment_findings(config, rules, portal, now_ms, scan_limit)
    found += _predictive_findings(rules, defs, portal)
    return found


def _predictive_findings(rules: RuleSet, defs: Mapping[str, PropertyInfo], portal: LivePortal) -> list[Finding]:
    """The learned model's features that read a property or a form the portal no longer has: they count as
    absent for every contact, so the model scores with less than it was trained on (retrain it)."""
    predictive = rules.spec.predictive
    if predictive is None:
        return []
    model = predictive.model
    found: list[Finding] = []
    for name in sorted(model.properties_read):
        if name not in defs:
            features = sorted(f.label for f in model.features if f.property_name == name)
            found.append(
                Finding(
                    "warning",
                    "predictive.model",
                    f"property {name} does not exist in the portal: model {model.version}'s features "
                    f"{', '.join(features)} read it and count as absent; train the model again",
                )
            )
    forms = set(portal.forms().values()) if model.forms_read else set()
    for name in sorted(model.forms_read - forms):
        found.append(
            Finding(
                "warning",
                "predictive.model",
                f"form {name!r} is not a form of the portal: model {model.version}'s feature form:{name} counts "
                "as absent for new submissions; train the model again",
            )
        )
    return found


# -- properties: existence, types and options --


def _contact_lookup(defs: Mapping[str, PropertyInfo], company_defs: Mapping[str, PropertyInfo]) -> Lookup:
    """On a contact, `company.x` is its primary company's `x` and any other name its own property."""

    def find(name: str) -> PropertyInfo | None:
        company = c.company_property(name)
        return company_defs.get(company) if company is not None else defs.get(name)

    return find


def _company_lookup(company_defs: Mapping[str, PropertyInfo]) -> Lookup:
    """On a company, `x` and `company.x` both name the company's own property."""
    return lambda name: company_defs.get(c.company_property(name) or name)


def _missing(
    reads: list[tuple[Path_, str]], find: Lookup, skip: frozenset[str] = frozenset(), *, on_company: bool = False
) -> list[Finding]:
    """An error for each property read that the portal does not have (once per place and name)."""
    found: list[Finding] = []
    seen: set[tuple[Path_, str]] = set()
    for where, name in reads:
        if name in skip or find(name) is not None or (where, name) in seen:
            continue
        seen.add((where, name))
        company = c.company_property(name) or (name if on_company else None)
        what = f"company property {company}" if company is not None else f"property {name}"
        found.append(Finding("error", path_text(where), f"{what} does not exist in the portal"))
    return found


def _tests(site: Site) -> Iterator[c.PropertyTest]:
    if site.condition is not None:
        for node in c.walk(site.condition):
            if isinstance(node, c.PropertyTest):
                yield node


def _type_findings(site: Site, find: Lookup) -> list[Finding]:
    where = path_text(site.path)
    found = _rule_type_findings(where, site, find)
    for test in _tests(site):
        info = find(test.property)
        if info is not None:
            finding = _test_finding(where, test, info)
            if finding is not None:
                found.append(finding)
    return found


def _rule_type_findings(where: str, site: Site, find: Lookup) -> list[Finding]:
    """A bands rule on a property that holds no numbers; a map rule whose values are not the property's options."""
    rule = site.rule
    info = find(rule.property) if isinstance(rule, BandRule | MapRule) else None
    if info is None:
        return []
    if isinstance(rule, BandRule) and info.type not in NUMBER_TYPES:
        return [_cannot_match(where, "bands", info)]
    if isinstance(rule, MapRule) and info.type in OPTION_TYPES:
        unknown = [label for key, label in sorted(rule.labels.items()) if key not in _folded(info)]
        if unknown:
            return [_not_options(f"{where}.map", unknown, info)]
    return []


def _test_finding(where: str, test: c.PropertyTest, info: PropertyInfo) -> Finding | None:
    """A test that cannot match the property's type, or compares with values that are not among its options."""
    if test.op in NUMERIC_OPS and info.type not in NUMBER_TYPES:
        return _cannot_match(where, test.op, info)
    if test.op in DATE_OPS and info.type not in DATE_TYPES:
        return _cannot_match(where, test.op.removeprefix("date_"), info)
    if test.op in TEXT_OPS and info.type not in TEXT_TYPES:
        return _cannot_match(where, test.op, info)
    if test.op in VALUE_OPS and info.type in OPTION_TYPES:
        values = test.value if isinstance(test.value, tuple) else (test.value,)
        unknown = [_text(v) for v in values if _text(v).casefold() not in _folded(info)]
        if unknown:
            return _not_options(where, unknown, info)
    return None


def _folded(info: PropertyInfo) -> set[str]:
    return {o.casefold() for o in info.options}


def _text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _cannot_match(where: str, op: str, info: PropertyInfo) -> Finding:
    return Finding("warning", where, f"{op} can never match: {info.name} is a {info.type} property in the portal")


def _not_options(where: str, values: list[str], info: PropertyInfo) -> Finding:
    shown = ", ".join(info.options[:30]) + (" ..." if len(info.options) > 30 else "")
    return Finding(
        "warning",
        where,
        f"{', '.join(repr(v) for v in values)} {'is not an option' if len(values) == 1 else 'are not options'} "
        f"of {info.name}; its options are: {shown or '(none)'}",
    )


# -- accounts --


def _account_findings(
    config: PortalConfig,
    rules: RuleSet,
    accounts: AccountSpec,
    defs: Mapping[str, PropertyInfo],
    company_defs: Mapping[str, PropertyInfo],
) -> list[Finding]:
    """The accounts section: its rules on company properties, its `contacts:` conditions on the contacts (the
    contact models' outputs exist once leadsync ran), and its output properties."""
    on_company, on_contact = _company_lookup(company_defs), _contact_lookup(defs, company_defs)
    company_sites, contact_sites = _account_sites(accounts)
    outputs = frozenset(
        name
        for m in rules.spec.models
        for name in (m.properties.score, m.properties.fit, m.properties.engagement, m.properties.grade)
    )
    found = _missing(list(_reads(company_sites)), on_company, on_company=True)
    found += _missing(list(_reads(contact_sites)), on_contact, outputs)
    for site in company_sites:
        found += _type_findings(site, on_company)
    for site in contact_sites:
        found += _type_findings(site, on_contact)
    return found + _output_findings(accounts, company_defs)


def _no_companies(portal: LivePortal) -> list[Finding]:
    """An accounts section on a portal without a company scores nothing: say so (one call, the first page)."""
    first = next(iter(portal.company_pages()), None)
    if first is not None and first.companies:
        return []
    return [
        Finding(
            "warning",
            "accounts",
            "the portal has no companies: the accounts section scores nothing until HubSpot holds company records",
        )
    ]


def _account_sites(accounts: AccountSpec) -> tuple[list[Site], list[Site]]:
    """The accounts section's conditions and rules with their paths: those read on the company, and the
    `contacts:` rules' `where`, read on each contact."""
    on_company: list[Site] = []
    on_contact: list[Site] = []
    for part, rules in (("fit", accounts.fit.rules), ("engagement", accounts.engagement.rules)):
        for i, rule in enumerate(rules):
            here: Path_ = ("accounts", part, "rules", i)
            if rule.when is not None:
                on_company.append(Site((*here, "when"), condition=rule.when))
            if isinstance(rule, ContactsRule):
                on_contact.append(Site((*here, "contacts", "where"), condition=rule.where))
            else:
                condition = rule.condition if isinstance(rule, ConditionRule) else None
                on_company.append(Site(here, condition=condition, rule=rule))
    return on_company, on_contact


def _reads(all_sites: list[Site]) -> Iterator[tuple[Path_, str]]:
    for site in all_sites:
        if isinstance(site.rule, MapRule | BandRule):
            yield site.path, site.rule.property
        for test in _tests(site):
            yield site.path, test.property


def _output_findings(accounts: AccountSpec, company_defs: Mapping[str, PropertyInfo]) -> list[Finding]:
    """An account output property that exists outside leadsync's group: leadsync would write a property it
    does not own, and refuses to (the accounts section has no `adopt`)."""
    props = accounts.properties
    found = []
    for kind in ACCOUNT_OUTPUTS:
        name = getattr(props, kind)
        info = company_defs.get(name)
        if info is not None and info.group != props.group:
            found.append(
                Finding(
                    "error",
                    path_text(("accounts", "properties", kind)),
                    f"company property {name} exists in the portal in group {info.group!r}, outside leadsync's "
                    f"group {props.group!r}: leadsync does not write it; name another property",
                )
            )
    return found


# -- stages --


def _stage_findings(config: PortalConfig, rules: RuleSet, defs: Mapping[str, PropertyInfo]) -> list[Finding]:
    info = defs.get(LIFECYCLE_STAGE)
    if info is None:
        return [Finding("error", "lifecycle", "the portal has no lifecyclestage property")]
    options = set(info.options)
    found: list[Finding] = []
    for (mpath, model_cfg), model in zip(model_entries(config), rules.spec.models, strict=True):
        lc = model.lifecycle
        if lc.mode == "off" or model_cfg.lifecycle is None:
            continue
        base = (*mpath, "lifecycle")
        used: list[tuple[Path_, str]] = [((*base, "stages", i, "stage"), t.stage) for i, t in enumerate(lc.thresholds)]
        used += [((*base, "rules", i, "stage"), r.stage) for i, r in enumerate(lc.rules)]
        used += [((*base, "never_touch", i), s) for i, s in enumerate(model_cfg.lifecycle.never_touch)]
        if model_cfg.lifecycle.order:
            used += [((*base, "order", i), s) for i, s in enumerate(model_cfg.lifecycle.order)]
        if lc.demote:
            used.append(((*base, "demote_to"), lc.demote_to))
        for where, stage in used:
            if stage not in options:
                found.append(
                    Finding(
                        "error",
                        path_text(where),
                        f"{stage!r} is not a lifecycle stage of the portal; lifecyclestage's options are: "
                        + ", ".join(info.options),
                    )
                )
    return found


# -- lists and forms --


def _list_findings(all_sites: list[Site], portal: LivePortal) -> list[Finding]:
    known: dict[int, bool] = {}
    found: list[Finding] = []
    for site in all_sites:
        if site.condition is None:
            continue
        for node in c.walk(site.condition):
            if not isinstance(node, c.InList):
                continue
            for list_id in sorted(node.list_ids):
                if list_id not in known:
                    known[list_id] = portal.list_name(list_id) is not None
                if not known[list_id]:
                    found.append(
                        Finding("error", path_text(site.path), f"hubspot_list {list_id}: the portal has no such list")
                    )
    return found


def _filters(site: Site) -> Iterator[c.EventFilter]:
    if isinstance(site.rule, EventRule):
        yield site.rule.filter
    if site.condition is not None:
        for node in c.walk(site.condition):
            if isinstance(node, c.EventCondition):
                yield node.filter


def _form_findings(all_sites: list[Site], portal: LivePortal) -> list[Finding]:
    wanted = [(site, flt) for site in all_sites for flt in _filters(site) if flt.form_name_contains]
    if not wanted:
        return []
    names = [n.casefold() for n in portal.forms().values()]
    found: list[Finding] = []
    for site, flt in wanted:
        for needle in flt.form_name_contains:
            if not any(needle in name for name in names):
                found.append(
                    Finding(
                        "warning",
                        f"{path_text(site.path)}.form_name_contains",
                        f"no form of the portal has {needle!r} in its name ({len(names)} forms)",
                    )
                )
    return found


# -- segments --


def _segment_findings(
    config: PortalConfig, rules: RuleSet, portal: LivePortal, now_ms: int, scan_limit: int
) -> list[Finding]:
    # A segment that looks at events needs every event read to be judged: only property segments are checked.
    todo = {
        m.spec.name: m
        for m in rules.models
        if m.segment is not None and m.spec.segment is not None and not c.event_kinds(m.spec.segment)
    }
    if not todo:
        return []
    members = {i: portal.list_members(i) for i in sorted(rules.list_ids) if portal.list_name(i) is not None}
    read = 0
    for page in portal.contact_pages(None):
        for stored in page.contacts:
            ctx = rules.context(with_lists(stored, members), (), now_ms)
            for name, model in list(todo.items()):
                assert model.segment is not None
                if model.segment(ctx):
                    del todo[name]
        read += len(page.contacts)
        if not todo or read >= scan_limit:
            break
    where = {m.spec.name: path for (path, _), m in zip(model_entries(config), rules.models, strict=True)}
    scope = f"the first {read}" if read >= scan_limit else f"all {read}"
    return [
        Finding("warning", path_text((*where[name], "segment")), f"matches none of {scope} contacts of the portal")
        for name in todo
    ]
