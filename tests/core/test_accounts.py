"""Account scores and company properties in contact rules (docs/SCORING.md section 6).

The account spec is built by hand from the core's classes with the values of the section's YAML example
(points in cents, strings casefolded, numbers as floats: as the config loader leaves them).
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator

import pytest

from sync.core.accounts import (
    AccountEngagement,
    AccountSpec,
    CompiledAccounts,
    ContactsRule,
    Rollup,
    compile_accounts,
    score_account,
)
from sync.core.conditions import CountSpec, EventCondition, EventFilter, PropertyTest
from sync.core.model import (
    FORM_SUBMISSION,
    AccountResult,
    Company,
    CompanyAssociation,
    Contact,
    ScoredContact,
    ScoreResult,
    primary_company,
)
from sync.core.rules import (
    Band,
    BandRule,
    EventRule,
    GradeBand,
    Grades,
    MapRule,
    ModelSpec,
    RuleGroup,
    RuleSet,
    RuleSetSpec,
    compile_ruleset,
)
from sync.core.scoring import breakdown_reasons, score
from tests.factories import NOW, NOW_MS, form

# --- the section's example, by hand ---------------------------------------------------

CONTACT_RULES = compile_ruleset(
    RuleSetSpec(models=(ModelSpec("default", RuleGroup("fit"), RuleGroup("engagement")),), version="test")
)
SIZE = BandRule("size", "numberofemployees", (Band(3000, gte=1000.0), Band(1500, gte=200.0)))
INDUSTRY = MapRule(
    "industry", "industry", {"energy": 2000, "finance": 1000}, {"energy": "ENERGY", "finance": "FINANCE"}
)
BUYING_GROUP = ContactsRule("buying-group", PropertyTest("ls_engagement", "gte", 15.0), 1500, CountSpec(at_least=3))
EXEC_ENGAGED = ContactsRule("exec-engaged", PropertyTest("jobtitle", "contains", ("ceo", "cto", "vp")), 1000)
GRADES = Grades(
    fit=(GradeBand("A", 40), GradeBand("B", 15), GradeBand("C")),
    engagement=(GradeBand("1", 40), GradeBand("2", 10), GradeBand("3")),
)


def example_spec(rollup: Rollup = "sum") -> AccountSpec:
    return AccountSpec(
        fit=RuleGroup("fit", (SIZE, INDUSTRY), max=10000),
        engagement=AccountEngagement(rollup, (BUYING_GROUP, EXEC_ENGAGED), max=10000),
        clamp=(0, 100),
        grades=GRADES,
        version="acct-test",
    )


def accounts(rollup: Rollup = "sum", rules: RuleSet = CONTACT_RULES) -> CompiledAccounts:
    return compile_accounts(example_spec(rollup), rules)


def result(cid: str, engagement: int, decay: int = 0, excluded: bool = False, holdout: bool = False) -> ScoreResult:
    """A contact's result from this run, as the contact scorer leaves it."""
    return ScoreResult(
        contact_id=cid,
        model="default",
        fit=0,
        engagement=engagement,
        decay=decay,
        score=engagement + decay,
        fit_grade=None,
        engagement_grade=None,
        grade=None,
        current_stage="",
        stage_target=None,
        stage_write="none",
        stage_reason="",
        excluded=excluded,
        exclusion_reason="competitor" if excluded else None,
        holdout=holdout,
        version="test",
    )


def member(
    cid: str,
    interest: int,
    title: str = "Engineer",
    decay: int = 0,
    excluded: bool = False,
    holdout: bool = False,
    **props: str,
) -> ScoredContact:
    contact = Contact(cid, {"jobtitle": title, **props}, email=f"c{cid}@acme.com")
    return ScoredContact(contact, result(cid, interest, decay, excluded, holdout))


def company(cid: str = "7", **props: str) -> Company:
    return Company(cid, props)


def line(res: AccountResult, rule: str) -> tuple[bool, float]:
    (hit,) = [h for h in res.breakdown if h.rule == rule]
    return hit.matched, hit.points


def adds_up(res: AccountResult) -> bool:
    return sum(h.cents for h in res.breakdown) == res.score * 100


# --- cases A1-A4 -----------------------------------------------------------------------


def test_case_a1() -> None:
    contacts = [member("1", 30, title="CTO"), member("2", 20), member("3", 5)]
    res = score_account(company(numberofemployees="1500", industry="ENERGY"), contacts, accounts(), NOW_MS)
    assert (res.fit, res.engagement, res.score, res.grade) == (50, 65, 100, "A1")
    assert res.rollup == 55
    assert line(res, "engagement:rollup") == (True, 55)
    assert line(res, "exec-engaged") == (True, 10)
    assert line(res, "buying-group") == (False, 0)  # two contacts at 15 or more, three wanted
    assert line(res, "total:clamp") == (True, -15)  # clamped from 115
    assert adds_up(res)


def test_case_a2() -> None:
    contacts = [member("1", 16), member("2", 16), member("3", 16)]
    res = score_account(company(numberofemployees="250", industry="RETAIL"), contacts, accounts(), NOW_MS)
    assert (res.fit, res.engagement, res.score, res.grade) == (15, 63, 78, "B1")
    assert line(res, "industry") == (False, 0)  # not in the map, no default
    assert line(res, "buying-group") == (True, 15)
    assert line(res, "exec-engaged") == (False, 0)
    assert adds_up(res)


def test_case_a3() -> None:
    contacts = [member("1", 80, excluded=True)]
    res = score_account(company(industry="FINANCE"), contacts, accounts(), NOW_MS)
    assert (res.fit, res.engagement, res.score, res.grade) == (10, 0, 10, "C3")
    assert line(res, "size") == (False, 0)
    assert (res.contacts, res.excluded_contacts) == (0, 1)
    assert adds_up(res)


def test_case_a4() -> None:
    contacts = [member("1", 30, title="CTO"), member("2", 20), member("3", 5)]
    res = score_account(company(numberofemployees="1500", industry="ENERGY"), contacts, accounts("max"), NOW_MS)
    assert res.engagement == 40
    assert line(res, "engagement:rollup") == (True, 30)
    assert (res.score, res.grade) == (90, "A1")
    assert adds_up(res)


# --- case A5: company.<property> in a contact rule -------------------------------------


def contact_rules(*rules: BandRule | MapRule) -> RuleSet:
    return compile_ruleset(
        RuleSetSpec(models=(ModelSpec("default", RuleGroup("fit", rules), RuleGroup("engagement")),), version="t")
    )


BANDS = (Band(300, lt=100.0), Band(500, gte=100.0, lte=500.0), Band(1000, gt=500.0))


def hit_of(rules: RuleSet, subject: Contact, rule: str) -> tuple[bool, float, str]:
    (hit,) = [h for h in score(subject, [], rules, NOW).breakdown if h.rule == rule]
    return hit.matched, hit.points, hit.detail


def test_case_a5_a_contact_without_company_gets_the_missing_value_behaviour() -> None:
    via_company = contact_rules(BandRule("size", "company.numberofemployees", BANDS))
    on_contact = contact_rules(BandRule("size", "numberofemployees", BANDS))
    alone = Contact("1", {"numberofemployees": "800"})  # its own property is not its company's
    matched, points, detail = hit_of(via_company, alone, "size")
    assert (matched, points) == (False, 0)
    assert detail == "company.numberofemployees is not set or not a number"
    assert (matched, points) == hit_of(on_contact, Contact("1", {}), "size")[:2]


@pytest.mark.parametrize(
    ("missing", "default", "expected"),
    [(None, 0, (False, 0)), (None, -300, (False, -3)), (-500, 0, (True, -5))],
)
def test_case_a5_a_map_on_a_company_property_uses_default_and_missing(
    missing: int | None, default: int, expected: tuple[bool, float]
) -> None:
    rule = MapRule("industry", "company.industry", {"energy": 1000}, {"energy": "ENERGY"}, default, missing)
    assert hit_of(contact_rules(rule), Contact("1", {}), "industry")[:2] == expected


# --- company.<property> in contact rules ----------------------------------------------------


@pytest.mark.parametrize(("employees", "expected"), [("99", 3), ("100", 5), ("500", 5), ("501", 10), ("lots", 0)])
def test_contact_bands_on_the_company_employee_count(employees: str, expected: int) -> None:
    rules = contact_rules(BandRule("company-size", "company.numberofemployees", BANDS))
    subject = Contact("1", {"numberofemployees": "5000"}, company_properties={"numberofemployees": employees})
    assert hit_of(rules, subject, "company-size")[1] == expected


def test_contact_map_on_the_company_industry_reads_the_company_and_names_it() -> None:
    rule = MapRule(
        "industry", "company.industry", {"energy": 1000, "finance": 300}, {"energy": "ENERGY", "finance": "FINANCE"}
    )
    subject = Contact("1", {"industry": "FINANCE"}, company_properties={"industry": "Energy"})
    assert hit_of(contact_rules(rule), subject, "industry") == (True, 10, "company.industry=ENERGY")


def test_company_properties_are_read_apart_from_contact_properties() -> None:
    rules = contact_rules(
        MapRule("industry", "company.industry", {"energy": 1000}, {"energy": "ENERGY"}),
        BandRule("size", "numberofemployees", BANDS),
    )
    assert rules.company_properties_read == frozenset({"industry"})
    assert "company.industry" not in rules.properties_read
    assert "numberofemployees" in rules.properties_read


# --- primary company ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("associations", "expected"),
    [
        ([("5", False), ("12", True), ("3", False)], "12"),  # Primary wins over a lower id
        ([("12", True), ("3", False)], "12"),  # whatever the order
        ([("10", False), ("9", False), ("11", False)], "9"),  # the lowest id, compared as numbers
        ([("9", True), ("4", True)], "4"),  # two Primary (never expected): still one answer
        ([], None),
    ],
)
def test_primary_company(associations: list[tuple[str, bool]], expected: str | None) -> None:
    assert primary_company(CompanyAssociation("1", cid, primary) for cid, primary in associations) == expected


# --- the roll-up ------------------------------------------------------------------------------


@pytest.mark.parametrize(("rollup", "expected"), [("sum", 67), ("max", 30), ("top_3", 62)])
def test_rollups(rollup: Rollup, expected: int) -> None:
    contacts = [member("1", 12), member("2", 30), member("3", 5), member("4", 20)]
    res = score_account(company(), contacts, accounts(rollup), NOW_MS)
    assert res.rollup == expected


@pytest.mark.parametrize(("engagement", "decay", "expected"), [(30, -10, 20), (10, -25, 0), (0, 0, 0)])
def test_a_contact_adds_its_current_interest_floored_at_zero(engagement: int, decay: int, expected: int) -> None:
    contacts = [member("1", engagement, decay=decay), member("2", 7)]
    assert score_account(company(), contacts, accounts(), NOW_MS).rollup == expected + 7


def test_holdout_contacts_count_and_excluded_ones_do_not() -> None:
    contacts = [
        member("1", 30, holdout=True),
        member("2", 40, title="CEO", excluded=True),  # neither its interest nor its title counts
        member("3", 5),
    ]
    res = score_account(company(), contacts, accounts(), NOW_MS)
    assert (res.rollup, res.contacts, res.excluded_contacts) == (35, 2, 1)
    assert line(res, "exec-engaged") == (False, 0)


def test_contacts_rules_read_this_runs_outputs_not_the_stale_ones() -> None:
    stale_high = [member(str(i), 5, ls_engagement="90") for i in range(3)]
    stale_low = [member(str(i), 16, ls_engagement="0") for i in range(3)]
    assert line(score_account(company(), stale_high, accounts(), NOW_MS), "buying-group") == (False, 0)
    assert line(score_account(company(), stale_low, accounts(), NOW_MS), "buying-group") == (True, 15)


def test_a_contacts_rule_can_test_the_contacts_events() -> None:
    demo = ContactsRule("demo", EventCondition(EventFilter(FORM_SUBMISSION, form_name_contains=("demo",))), 2000)
    spec = AccountSpec(fit=RuleGroup("fit"), engagement=AccountEngagement("sum", (demo,)))
    compiled = compile_accounts(spec, CONTACT_RULES)
    with_demo = ScoredContact(Contact("1", {}), result("1", 0), [form("c1", 3, name="Demo request")])
    without = ScoredContact(Contact("2", {}), result("2", 0), [form("c2", 3, name="Ebook")])
    assert line(score_account(company(), [without], compiled, NOW_MS), "demo") == (False, 0)
    assert line(score_account(company(), [without, with_demo], compiled, NOW_MS), "demo") == (True, 20)


def test_an_unparseable_company_number_is_missing_for_bands_and_the_rest_is_scored() -> None:
    res = score_account(company(numberofemployees="about 2k", industry="ENERGY"), [], accounts(), NOW_MS)
    (size,) = [h for h in res.breakdown if h.rule == "size"]
    assert (size.matched, size.cents) == (False, 0)
    assert size.detail == "numberofemployees is not set or not a number"
    assert (res.fit, res.score) == (20, 20)


def test_the_engagement_cap_and_the_reasons_work_as_for_contacts() -> None:
    contacts = [member(str(i), 60, title="VP Sales") for i in range(3)]
    res = score_account(company(numberofemployees="1500", industry="ENERGY"), contacts, accounts(), NOW_MS)
    assert res.engagement == 100  # 180 + 15 + 10 capped to 100
    assert line(res, "engagement:cap") == (True, -105)
    assert adds_up(res)
    assert breakdown_reasons(res.breakdown) == (
        "+180 contacts' interest (sum); +30 size; +20 industry=ENERGY; +15 buying-group; +10 exec-engaged"
    )


def test_an_event_rule_on_a_company_is_refused() -> None:
    spec = AccountSpec(fit=RuleGroup("fit", (EventRule("opens", EventFilter("email_open"), 100),)))
    with pytest.raises(ValueError, match="a company has no events"):
        compile_accounts(spec, CONTACT_RULES)


def many_contacts(n: int) -> Iterator[ScoredContact]:
    for i in range(n):
        yield member(str(i), i % 50, title="CEO" if i % 1000 == 0 else "Engineer", ls_engagement="0")


def test_a_company_with_20000_contacts_rolls_up_in_bounded_memory() -> None:
    n = 20_000
    expected_sum = sum(i % 50 for i in range(n))
    rules = [(r, accounts(r)) for r in ("sum", "top_3")]
    tracemalloc.start()
    try:
        results = {r: score_account(company(), many_contacts(n), compiled, NOW_MS) for r, compiled in rules}
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert results["sum"].rollup == expected_sum
    assert results["top_3"].rollup == 49 * 3
    assert results["sum"].contacts == n
    (exec_line,) = [h for h in results["sum"].breakdown if h.rule == "exec-engaged"]
    assert exec_line.detail.startswith(f"{n // 1000} contacts where")
    # Holding the 20,000 contacts at once would take tens of MB; the roll-up keeps a few numbers per company.
    assert peak < 512 * 1024
