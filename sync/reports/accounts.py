"""Account scores offline: a portal's contacts in one pass, feeding one roll-up per company.

Each contact is given its primary company's properties (what `company.<property>` reads), scored, and then
counted by every company it is associated with (any label). Only the per-company tallies are kept, never a
second copy of the contacts, so `score` and `explain` roll up a large portal in the memory of its companies.
Bad input (an association to a company that is not there, a company number that does not parse) is reported
and the rest scored.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sync.core.accounts import (
    AccountProperties,
    AccountSpec,
    AccountTally,
    CompiledAccounts,
    compile_accounts,
    score_tally,
)
from sync.core.model import (
    AccountResult,
    Company,
    CompanyAssociation,
    Contact,
    Event,
    ScoredContact,
    ScoreResult,
    primary_company,
)
from sync.core.rules import RuleSet
from sync.core.scoring import breakdown_reasons


def company_order(company_id: str) -> tuple[int, int, str]:
    """Numeric ids by value, any other after them by text: the order companies are listed in."""
    if company_id.isascii() and company_id.isdigit():
        return (0, int(company_id), "")
    return (1, 0, company_id)


@dataclass
class Companies:
    """A portal's companies and each contact's associations to them; an association to a company that is not
    there is dropped with a problem (HubSpot can hand back one to a company deleted since)."""

    by_id: dict[str, Company]
    of_contact: dict[str, list[CompanyAssociation]]
    problems: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, companies: Iterable[Company], associations: Iterable[CompanyAssociation]) -> Companies:
        found = cls({c.id: c for c in companies}, {})
        found.problems = found.extend(associations)
        return found

    def extend(self, associations: Iterable[CompanyAssociation]) -> list[str]:
        """Adds associations (a streamed page of contacts' ones, before the page is scored); returns the
        problems of those skipped."""
        problems: list[str] = []
        for association in associations:
            if association.company_id not in self.by_id:
                problems.append(
                    f"contact {association.contact_id}: associated company {association.company_id} does not "
                    "exist; association skipped"
                )
                continue
            self.of_contact.setdefault(association.contact_id, []).append(association)
        return problems

    def primary(self, contact_id: str) -> Company | None:
        chosen = primary_company(self.of_contact.get(contact_id, ()))
        return self.by_id.get(chosen) if chosen is not None else None

    def ids_of(self, contact_id: str) -> list[str]:
        """The ids of every company the contact is associated with, once each."""
        return list(dict.fromkeys(a.company_id for a in self.of_contact.get(contact_id, ())))


@dataclass(frozen=True)
class CompanyInputs:
    """What the operator tools need of a portal's companies: the companies and associations (what
    `company.<property>` reads) and, with an `accounts:` section, how they are scored. `base`: the base
    config's section, when a plan compares two configs."""

    companies: Companies
    accounts: AccountSpec | None = None
    base: AccountSpec | None = None


class AccountPass:
    """The roll-up of one pass over the contacts: a tally per company, fed as each contact is scored."""

    def __init__(self, accounts: CompiledAccounts, companies: Companies) -> None:
        self.accounts = accounts
        self.companies = companies
        self.tallies: dict[str, AccountTally] = {}

    @classmethod
    def build(cls, spec: AccountSpec, rules: RuleSet, companies: Companies) -> AccountPass:
        return cls(compile_accounts(spec, rules), companies)

    def add(self, contact: Contact, result: ScoreResult, events: Sequence[Event], now_ms: int) -> None:
        """Count one scored contact in each of its companies (events kept only when a `contacts:` rule reads
        them)."""
        company_ids = self.companies.ids_of(contact.id)
        if not company_ids:
            return
        member = ScoredContact(contact, result, events if self.accounts.event_kinds else ())
        for company_id in company_ids:
            tally = self.tallies.get(company_id)
            if tally is None:
                tally = self.tallies[company_id] = self.accounts.tally()
            tally.add(member, now_ms)

    def results(self, now_ms: int, only: Iterable[str] | None = None) -> Iterator[AccountResult]:
        """Every company's result (one without contacts too: its fit still counts), in id order."""
        wanted = set(only) if only is not None else None
        for company_id in sorted(self.companies.by_id, key=company_order):
            if wanted is not None and company_id not in wanted:
                continue
            tally = self.tallies.get(company_id) or self.accounts.tally()
            yield score_tally(self.companies.by_id[company_id], tally, now_ms)


def output_names(props: AccountProperties) -> tuple[str, ...]:
    """The company properties leadsync writes for account scores, scored_at last."""
    return (props.score, props.fit, props.engagement, props.grade, props.reasons, props.scored_at)


def company_reads(rules: RuleSet, accounts: AccountSpec | None) -> list[str]:
    """The company properties a tool reads live: what the contact and account rules read, the account outputs
    (to diff against) and the name (to show)."""
    names = {*rules.company_properties_read}
    if accounts is not None:
        names |= {*compile_accounts(accounts, rules).company_properties_read, *output_names(accounts.properties)}
    return sorted(names | {"name"}) if names else []


def account_json(result: AccountResult) -> dict[str, Any]:
    """The `score --json` object of one company."""
    return {
        "company_id": result.company_id,
        "fit": result.fit,
        "engagement": result.engagement,
        "score": result.score,
        "grade": result.grade,
        "fit_grade": result.fit_grade,
        "engagement_grade": result.engagement_grade,
        "rollup": result.rollup,
        "contacts": {"counted": result.contacts, "excluded": result.excluded_contacts},
        "version": result.version,
        "reasons": breakdown_reasons(result.breakdown),
        "breakdown": [
            {"rule": h.rule, "group": h.group, "matched": h.matched, "points": h.cents / 100, "detail": h.detail}
            for h in result.breakdown
        ],
    }
