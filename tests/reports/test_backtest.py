"""The backtest's metrics on small hand-made portals: every number worked out by hand."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from sync.core.model import Contact, Event
from sync.core.rules import RuleSet
from sync.errors import ConfigError
from sync.reports.backtest import Backtest, Outcome, Rate, parse_outcome, run_backtest
from tests.factories import NOW_MS, example_data, rules_from

TIERS = {"gold": 30, "silver": 10, "bronze": 0}  # fit points: grade A from 30, B from 10, else C
CONVERTED = parse_outcome("lifecyclestage=opportunity|customer")


def ruleset(
    stages: Sequence[Mapping[str, Any]] = ({"stage": "marketingqualifiedlead", "min_score": 50},),
    fit_grades: Sequence[Mapping[str, Any]] = ({"grade": "A", "min": 30}, {"grade": "B", "min": 10}, {"grade": "C"}),
    holdout: float = 0,
    fit_rules: Sequence[Mapping[str, Any]] = (),
) -> RuleSet:
    """A score of tier points (fit) + `level` points (engagement, 0..100); the example's exclusions."""
    data = example_data()
    data["holdout"] = {"percent": holdout, "salt": "backtest-tests"}
    data["model"] = {
        "fit": {"rules": [{"id": "tier", "property": "tier", "map": TIERS}, *fit_rules]},
        "engagement": {"rules": [{"id": "level", "property": "level", "map": {f"s{n}": n for n in range(101)}}]},
        "grades": {"fit": list(fit_grades), "engagement": [{"grade": "1", "min": 40}, {"grade": "2"}]},
        "lifecycle": {"mode": "score", "stages": list(stages)},
    }
    return rules_from(data)


def person(
    cid: int, score: int, converted: bool, tier: str = "bronze", email: str = "", **props: str
) -> tuple[Contact, list[Event]]:
    """A contact scoring exactly `score` (tier points included)."""
    stage = "customer" if converted else "lead"
    email = email or f"c{cid}@buyer.example"
    level = score - TIERS[tier]
    properties = {"email": email, "tier": tier, "level": f"s{level}", "lifecyclestage": stage, **props}
    return Contact(str(cid), properties, email, NOW_MS, stage), []


def backtest(people: Sequence[tuple[Contact, list[Event]]], rules: RuleSet | None = None, **options: Any) -> Backtest:
    return run_backtest(people, rules or ruleset(), NOW_MS, CONVERTED, **options)


# -- the outcome --


@pytest.mark.parametrize(
    ("text", "prop", "values"),
    [
        ("lifecyclestage=opportunity|customer", "lifecyclestage", ("opportunity", "customer")),
        (" hs_lead_status = OPEN_DEAL ", "hs_lead_status", ("OPEN_DEAL",)),
        ("deal_stage=won | closed won", "deal_stage", ("won", "closed won")),
    ],
)
def test_an_outcome_is_a_property_and_its_values(text: str, prop: str, values: tuple[str, ...]) -> None:
    assert parse_outcome(text) == Outcome(prop, values)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("lifecyclestage", "no '='"),
        ("=customer", "no property name"),
        ("lifecyclestage=", "no value"),
        ("lifecyclestage=customer||opportunity", "an empty value"),
    ],
)
def test_a_malformed_outcome_says_what_is_wrong_and_the_form_expected(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_outcome(text)
    message = str(exc.value)
    assert "--outcome" in message and problem in message and "PROPERTY=V1|V2" in message


def test_outcome_values_compare_without_case_and_the_stage_field_stands_in_for_a_missing_property() -> None:
    outcome = parse_outcome("lifecyclestage=Customer")
    assert outcome.converted(Contact("1", {"lifecyclestage": "customer"}))
    assert outcome.converted(Contact("2", {}, lifecycle_stage="CUSTOMER"))
    assert not outcome.converted(Contact("3", {"lifecyclestage": "lead"}, lifecycle_stage="customer"))
    assert not parse_outcome("hs_lead_status=OPEN").converted(Contact("4", {}, lifecycle_stage="OPEN"))


# -- thresholds --


def test_precision_recall_and_lift_at_a_threshold() -> None:
    # score >= 50 qualifies: 60, 55, 50, 70 -> 2 of the 4 converted; 3 of 10 converted in all.
    scores = [(60, True), (55, True), (50, False), (49, True), (10, False), (0, False), (70, False), (20, False),
              (30, False), (40, False)]  # fmt: skip
    bt = backtest([person(i, s, c) for i, (s, c) in enumerate(scores)])
    mql = bt.threshold("marketingqualifiedlead")
    assert mql is not None
    assert (bt.overall.contacts, bt.overall.converted) == (10, 3)
    assert (mql.qualified.contacts, mql.qualified.converted) == (4, 2)
    assert mql.precision == pytest.approx(0.5)
    assert mql.recall == pytest.approx(2 / 3)
    assert mql.lift == pytest.approx(0.5 / 0.3)
    assert mql.share == pytest.approx(0.4)


def test_a_threshold_no_contact_reaches_has_no_precision_and_no_lift() -> None:
    bt = backtest([person(1, 10, True), person(2, 20, False)])
    mql = bt.threshold("marketingqualifiedlead")
    assert mql is not None
    assert (mql.qualified.contacts, mql.precision, mql.lift, mql.recall) == (0, None, None, 0)


SQL_B = {"stage": "salesqualifiedlead", "min_score": 50, "min_fit_grade": "B"}


def test_a_minimum_fit_grade_lets_that_grade_and_better_ones_qualify() -> None:
    bt = backtest(
        [person(1, 60, True, "gold"), person(2, 60, True, "silver"), person(3, 60, True, "bronze")],
        ruleset(stages=[SQL_B]),
    )
    sql = bt.threshold("salesqualifiedlead")
    assert sql is not None and sql.qualified.contacts == 2  # A and B, not C


def test_the_grade_order_is_the_order_of_the_fit_bands_not_the_alphabet() -> None:
    # "cold" sorts before "warm", but comes after it in the bands: it must not pass min_fit_grade warm.
    grades: list[dict[str, object]] = [{"grade": "hot", "min": 30}, {"grade": "warm", "min": 10}, {"grade": "cold"}]
    stage = {"stage": "salesqualifiedlead", "min_score": 50, "min_fit_grade": "warm"}
    bt = backtest(
        [person(1, 60, True, "gold"), person(2, 60, True, "silver"), person(3, 60, True, "bronze")],
        ruleset(stages=[stage], fit_grades=grades),
    )
    sql = bt.threshold("salesqualifiedlead")
    assert sql is not None and sql.qualified.contacts == 2
    assert [g.fit_grade for g in bt.grades] == ["hot", "warm", "cold"]


def test_conversion_by_grade_in_band_order() -> None:
    people = [person(1, 70, True, "gold"), person(2, 35, False, "gold"), person(3, 50, True, "silver"),
              person(4, 60, False, "silver"), person(5, 5, False)]  # fmt: skip
    bt = backtest(people)
    assert [(g.grade, g.counts.contacts, g.counts.converted) for g in bt.grades] == [
        ("A1", 1, 1),
        ("A2", 1, 0),
        ("B1", 2, 1),
        ("C2", 1, 0),
    ]


# -- score bands --


@pytest.mark.parametrize(
    ("width", "expected"),
    [
        (10, {"0-9": (2, 1), "10-19": (1, 0), "40-49": (1, 1), "50-59": (1, 0), "100": (1, 1)}),
        (25, {"0-24": (3, 1), "25-49": (1, 1), "50-74": (1, 0), "100": (1, 1)}),
    ],
)
def test_score_bands_start_at_multiples_of_the_width(width: int, expected: dict[str, tuple[int, int]]) -> None:
    people = [person(1, 0, True), person(2, 9, False), person(3, 10, False), person(4, 49, True),
              person(5, 50, False), person(6, 100, True)]  # fmt: skip
    bt = backtest(people, band_width=width)
    bands = {b.label: (b.counts.contacts, b.counts.converted) for b in bt.bands}
    assert {label: counts for label, counts in bands.items() if counts[0]} == expected
    assert bt.bands[0].low == 0 and bt.bands[-1].label == "100"  # the top band ends at the highest score
    assert all(b.high - b.low == width for b in bt.bands[:-1])  # empty bands in between are kept


# -- rules --

WEBINAR = {"id": "webinar", "property": "webinar", "equals": "yes", "points": 1}
VIP = {"id": "vip", "property": "vip", "equals": "yes", "points": 1}


def rule_people() -> list[tuple[Contact, list[Event]]]:
    """40 webinar contacts, half converted; 3 VIPs, all converted; 57 others, 6 converted."""
    people = [person(i, 20, i % 2 == 0, webinar="yes") for i in range(40)]
    people += [person(100 + i, 20, True, vip="yes") for i in range(3)]
    people += [person(200 + i, 20, i < 6) for i in range(57)]
    return people


def test_rules_rank_by_close_rate_and_those_below_the_minimum_support_are_marked_and_listed_last() -> None:
    bt = backtest(rule_people(), ruleset(fit_rules=[WEBINAR, VIP]), min_support=30)
    webinar, vip = bt.rule("webinar"), bt.rule("vip")
    assert webinar is not None and vip is not None
    assert (webinar.counts.contacts, webinar.counts.converted, webinar.low_support) == (40, 20, False)
    assert (vip.counts.contacts, vip.counts.converted, vip.low_support) == (3, 3, True)
    keys = [r.key for r in bt.rules]
    assert keys.index("webinar") < keys.index("vip")
    assert all(r.low_support for r in bt.rules[keys.index("vip") :])
    rows = {row["key"]: row for row in bt.json()["rules"]}
    assert rows["vip"]["low_support"] is True and rows["vip"]["close_rate"] == 1.0
    assert rows["webinar"]["close_rate"] == 0.5 and rows["webinar"]["lift"] == pytest.approx(0.5 / 0.29, abs=1e-4)


def test_with_a_low_minimum_support_the_small_rule_ranks_first() -> None:
    bt = backtest(rule_people(), ruleset(fit_rules=[WEBINAR, VIP]), min_support=3)
    assert bt.rules[0].key == "vip" and not bt.rules[0].low_support


def test_a_map_rule_counts_per_value_and_its_default_is_no_match() -> None:
    industry = {"id": "industry", "property": "industry", "map": {"ENERGY": 10}, "default": -2}
    people = [person(1, 20, True, industry="ENERGY"), person(2, 20, False, industry="RETAIL")]
    bt = backtest(people, ruleset(fit_rules=[industry]), min_support=1)
    assert bt.rule("industry=ENERGY") is not None
    assert bt.rule("industry=RETAIL") is None and bt.rule("industry") is None
    contribution = next(c for c in bt.contributions if c.rule == "industry")
    assert (contribution.positive, contribution.negative, contribution.contacts) == (1000, -200, 2)


# -- holdout, exclusions, failures --


def test_the_holdout_is_compared_with_the_written_contacts_overall_and_per_threshold() -> None:
    rules = ruleset(holdout=50)
    people = [person(i, 60 if i % 2 == 0 else 10, i % 3 == 0) for i in range(60)]
    in_holdout = {c.id for c, _ in people if rules.in_holdout(c.id)}
    assert 0 < len(in_holdout) < 60

    def rate(ids: list[str]) -> Rate:
        return Rate(len(ids), sum(int(i) % 3 == 0 for i in ids))

    ids = [c.id for c, _ in people]
    qualified = [i for i in ids if int(i) % 2 == 0]
    bt = backtest(people, rules)
    assert bt.holdout == rate([i for i in ids if i in in_holdout])
    assert bt.written == rate([i for i in ids if i not in in_holdout])
    mql = bt.threshold("marketingqualifiedlead")
    assert mql is not None
    assert mql.holdout == rate([i for i in qualified if i in in_holdout])
    assert mql.written == rate([i for i in qualified if i not in in_holdout])
    assert bt.json()["holdout"]["holdout"]["contacts"] == len(in_holdout)


def test_excluded_contacts_are_counted_apart_and_left_out_of_the_metrics() -> None:
    people = [person(1, 60, True), person(2, 60, True, email="x@rival.com"), person(3, 10, False)]
    bt = backtest(people)
    assert bt.contacts == 3
    assert dict(bt.excluded) == {"competitor": 1}
    assert (bt.overall.contacts, bt.overall.converted) == (2, 1)
    assert bt.json()["contacts"]["excluded_by_reason"] == {"competitor": 1}


class _BrokenProperties(dict[str, str]):
    def get(self, *args: object) -> Any:
        raise RuntimeError("broken record")


def test_a_contact_whose_scoring_fails_is_reported_and_skipped() -> None:
    broken = Contact("9", _BrokenProperties(email="b@buyer.example"), "b@buyer.example", NOW_MS, "customer")
    bt = backtest([person(1, 60, True), (broken, []), person(3, 10, False)])
    assert bt.problems == ["contact 9: RuntimeError: broken record"]
    assert (bt.contacts, bt.overall.contacts) == (3, 2)
    assert bt.json()["contacts"]["skipped"] == 1


# -- warnings --

STAGES_50_80 = [{"stage": "marketingqualifiedlead", "min_score": 50}, {"stage": "salesqualifiedlead", "min_score": 80}]


@pytest.mark.parametrize(("converted_just_below", "warned"), [(30, True), (2, False)])
def test_a_threshold_above_a_band_that_converts_well_is_too_high(converted_just_below: int, warned: bool) -> None:
    # SQL at 80 catches 5 converters; 40 contacts at 75 convert at 30/40 against a base rate of 40/200.
    people = [person(i, 85, i < 5) for i in range(10)]
    people += [person(100 + i, 75, i < converted_just_below) for i in range(40)]
    people += [person(200 + i, 5, i < 5) for i in range(150)]
    bt = backtest(people, ruleset(stages=STAGES_50_80))
    kinds = [(w.kind, w.stage) for w in bt.warnings]
    assert kinds == ([("threshold_too_high", "salesqualifiedlead")] if warned else [])
    if warned:
        message = bt.warnings[0].message
        assert "SQL threshold (score >= 80) looks too high" in message
        assert "only 12% of the contacts who converted" in message
        assert "lowering min_score to 70" in message


def test_a_small_band_below_does_not_call_a_threshold_too_high() -> None:
    people = [person(i, 85, i < 1) for i in range(10)] + [person(100 + i, 75, True) for i in range(5)]
    people += [person(200 + i, 5, i < 5) for i in range(150)]
    bt = backtest(people, ruleset(stages=STAGES_50_80), min_support=30)
    assert [w.kind for w in bt.warnings] == []


@pytest.mark.parametrize(("converted_above", "warned"), [(25, True), (45, False)])
def test_a_threshold_most_contacts_pass_without_converting_more_is_too_low(converted_above: int, warned: bool) -> None:
    # 50 of 100 contacts reach 50 (share 50%); the other 50 convert 15 times.
    people = [person(i, 60 if i < 40 else 90, i < converted_above) for i in range(50)]
    people += [person(100 + i, 20, i < 15) for i in range(50)]
    bt = backtest(people)
    kinds = [(w.kind, w.stage) for w in bt.warnings]
    assert kinds == ([("threshold_too_low", "marketingqualifiedlead")] if warned else [])
    if warned:
        message = bt.warnings[0].message
        assert "MQL threshold (score >= 50) looks too low: 50% of scored contacts reach it" in message
        assert "only 1.2x as often as the average contact (50.0% against 40.0%)" in message


def test_the_too_low_warning_suggests_the_lowest_higher_threshold_that_does_better() -> None:
    # From 60 up (the 65s and 95s) contacts convert 1.3x as often; from 70 up (the 95s) 2.1x.
    people = [person(i, 55, i < 16) for i in range(80)] + [person(100 + i, 65, i < 5) for i in range(40)]
    people += [person(200 + i, 95, i < 20) for i in range(40)] + [person(300 + i, 5, i < 16) for i in range(80)]
    bt = backtest(people)
    assert [w.kind for w in bt.warnings] == ["threshold_too_low"]
    assert "From score 70 up, contacts convert 2.1x as often: consider raising min_score to 70." in (
        bt.warnings[0].message
    )


def test_no_conversion_at_all_is_a_warning_about_the_outcome() -> None:
    bt = backtest([person(1, 60, False), person(2, 10, False)])
    assert [w.kind for w in bt.warnings] == ["no_conversions"]
    assert "--outcome" in bt.warnings[0].message


# -- json --


def test_the_json_has_every_section() -> None:
    bt = backtest(rule_people(), ruleset(fit_rules=[WEBINAR, VIP]))
    out = bt.json()
    assert out.keys() >= {
        "version", "as_of", "outcome", "band_width", "min_support", "contacts", "base_rate", "score_bands",
        "grades", "thresholds", "rules", "contributions", "holdout", "warnings", "problems",
    }  # fmt: skip
    assert out["outcome"] == "lifecyclestage=opportunity|customer"
    assert out["base_rate"] == {"contacts": 100, "converted": 29, "rate": 0.29}
    assert out["thresholds"][0].keys() >= {"stage", "min_score", "qualified", "precision", "recall", "lift"}
