"""decide_stage: which lifecycle stage a contact should have, and how it is written.

The lifecycle is the reference one (MQL at 50, SQL at 80 with fit grade B or
better, a contact-sales form rule for SQL, hysteresis 5) with per-test changes.
"""

from __future__ import annotations

from typing import Any

import pytest

from sync.core.lifecycle import StageDecision, decide_stage
from tests.factories import example_data, rules_from

MQL, SQL = "marketingqualifiedlead", "salesqualifiedlead"


def decide(
    score: int,
    current: str = "",
    fit_grade: str | None = "A",
    rule_stages: tuple[str, ...] = (),
    written: str | None = "(current)",
    **lifecycle: Any,
) -> StageDecision:
    """By default leadsync last wrote the current stage: the tests of who owns a stage pass `written`."""
    data = example_data()
    data["model"]["lifecycle"].update(lifecycle)
    model = rules_from(data).models[0]
    return decide_stage(
        model.spec.lifecycle,
        current=current,
        score=score,
        fit_grade=fit_grade,
        fit_grade_rank=model.fit_grade_rank,
        rule_stages=list(rule_stages),
        written_stage=current if written == "(current)" else written,
    )


def outcome(decision: StageDecision) -> tuple[str, str | None]:
    """(write, the stage written), with None when nothing is written."""
    return decision.write, decision.target if decision.write != "none" else None


@pytest.mark.parametrize(
    ("score", "current", "rule_stages"),
    [(95, "", ()), (95, "lead", ()), (0, "lead", (SQL,)), (10, SQL, ())],
)
def test_mode_off_never_writes_or_targets_a_stage(score: int, current: str, rule_stages: tuple[str, ...]) -> None:
    decision = decide(score, current, rule_stages=rule_stages, mode="off", demote=True)
    assert (decision.target, decision.write) == (None, "none")


@pytest.mark.parametrize(
    ("score", "current", "fit_grade", "expected"),
    [
        (49, "", "A", ("none", None)),
        (50, "", "A", ("set", MQL)),
        (50, "subscriber", "A", ("set", MQL)),
        (79, "lead", "A", ("set", MQL)),
        (80, "lead", "A", ("set", SQL)),
        (80, MQL, "B", ("set", SQL)),
        (95, "lead", "C", ("set", MQL)),  # SQL needs fit grade B or better
        (95, "lead", None, ("set", MQL)),  # no grade: no grade-gated stage
    ],
)
def test_mode_score_promotes_to_the_highest_qualifying_stage(
    score: int, current: str, fit_grade: str | None, expected: tuple[str, str | None]
) -> None:
    assert outcome(decide(score, current, fit_grade)) == expected


@pytest.mark.parametrize(
    ("score", "rule_stages", "expected"),
    [
        (95, (), ("none", None)),  # the score does not assign stages in mode rules
        (0, (SQL,), ("set", SQL)),
        (0, (MQL, SQL), ("set", SQL)),
    ],
)
def test_mode_rules_assigns_stages_from_conditions_alone(
    score: int, rule_stages: tuple[str, ...], expected: tuple[str, str | None]
) -> None:
    assert outcome(decide(score, "lead", rule_stages=rule_stages, mode="rules", stages=[])) == expected


@pytest.mark.parametrize(("score", "current"), [(0, "lead"), (60, "lead"), (60, MQL)])
def test_stage_rules_apply_in_mode_score_whatever_the_score(score: int, current: str) -> None:
    assert outcome(decide(score, current, fit_grade="C", rule_stages=(SQL,))) == ("set", SQL)


@pytest.mark.parametrize("current", ["opportunity", "customer", "evangelist", "other"])
@pytest.mark.parametrize("demote", [False, True])
def test_never_touch_stages_are_left_alone(current: str, demote: bool) -> None:
    assert decide(95, current, rule_stages=(SQL,), demote=demote).write == "none"


@pytest.mark.parametrize("current", ["partner", "Lead", "MQL"])
@pytest.mark.parametrize("demote", [False, True])
def test_a_stage_outside_the_order_is_left_alone(current: str, demote: bool) -> None:
    assert decide(95, current, demote=demote).write == "none"


@pytest.mark.parametrize(
    ("score", "current"),
    [
        (60, SQL),  # already past MQL
        (95, "opportunity"),  # past SQL (opportunity removed from never_touch below)
        (95, "customer"),
        (85, SQL),  # already there
        (55, MQL),
    ],
)
def test_forward_only_never_writes_a_stage_at_or_behind_the_current_one(score: int, current: str) -> None:
    decision = decide(score, current, never_touch=[], demote=False)
    assert decision.write == "none"


@pytest.mark.parametrize(
    ("score", "current", "expected"),
    [
        (79, SQL, ("none", None)),
        (75, SQL, ("none", None)),  # 80 - 5: inside the band, keeps SQL
        (74, SQL, ("clear_then_set", MQL)),
        (60, SQL, ("clear_then_set", MQL)),  # case 14
        (49, MQL, ("none", None)),
        (45, MQL, ("none", None)),  # 50 - 5: keeps MQL
        (44, MQL, ("clear_then_set", "lead")),
    ],
)
def test_demote_only_below_the_threshold_minus_hysteresis(
    score: int, current: str, expected: tuple[str, str | None]
) -> None:
    assert outcome(decide(score, current, demote=True)) == expected


@pytest.mark.parametrize(
    ("demote_to", "expected"),
    [("lead", "lead"), ("subscriber", "subscriber")],
)
def test_demote_goes_to_demote_to_when_no_lower_stage_qualifies(demote_to: str, expected: str) -> None:
    assert outcome(decide(10, SQL, demote=True, demote_to=demote_to)) == ("clear_then_set", expected)


@pytest.mark.parametrize("hysteresis", [0, 5, 20])
def test_hysteresis_widens_the_band_that_keeps_the_stage(hysteresis: int) -> None:
    kept = decide(80 - hysteresis, SQL, demote=True, hysteresis=hysteresis)
    dropped = decide(80 - hysteresis - 1, SQL, demote=True, hysteresis=hysteresis)
    assert (kept.write, dropped.write) == ("none", "clear_then_set")


@pytest.mark.parametrize("current", ["", "subscriber", "lead"])
def test_demote_leaves_stages_the_model_does_not_set(current: str) -> None:
    assert decide(0, current, demote=True).write == "none"


def test_a_stage_rule_holds_the_stage_against_demotion() -> None:
    assert decide(0, SQL, rule_stages=(SQL,), demote=True).write == "none"


@pytest.mark.parametrize(("score", "expected"), [(95, ("none", None)), (60, ("clear_then_set", MQL))])
def test_only_the_score_demotes_a_slipping_fit_grade_does_not(score: int, expected: tuple[str, str | None]) -> None:
    # Grade C no longer meets SQL's min_fit_grade B, but a high score keeps the stage (no flapping).
    assert outcome(decide(score, SQL, fit_grade="C", demote=True)) == expected


LEAD = "lead"


@pytest.mark.parametrize(
    ("mode", "score", "rule_stages", "current", "written", "own_stages", "expected", "held"),
    [
        # A stage a person set (leadsync never wrote one, or wrote another since changed): held back.
        ("score", 10, (), SQL, None, "written", ("none", None), True),
        ("score", 10, (), MQL, None, "written", ("none", None), True),
        ("score", 60, (), SQL, MQL, "written", ("none", None), True),  # leadsync wrote MQL, a person moved to SQL
        ("score", 10, (), MQL, SQL, "written", ("none", None), True),  # leadsync wrote SQL, a person moved to MQL
        # The stage leadsync last wrote and HubSpot still holds: demoted.
        ("score", 60, (), SQL, SQL, "written", ("clear_then_set", MQL), False),
        ("score", 10, (), MQL, MQL, "written", ("clear_then_set", LEAD), False),
        # A portal that owns every stage: demoted whoever set it.
        ("score", 60, (), SQL, None, "all", ("clear_then_set", MQL), False),
        ("score", 10, (), MQL, SQL, "all", ("clear_then_set", LEAD), False),
        # Promotions past a stage someone set stay allowed, whoever set it.
        ("score", 90, (), MQL, None, "written", ("set", SQL), False),
        ("score", 55, (), LEAD, None, "written", ("set", MQL), False),
        # Within the hysteresis nothing is due, so nothing is held back either.
        ("score", 76, (), SQL, None, "written", ("none", None), False),
        # Rules mode alike: the rule no longer matches.
        ("rules", 0, (), SQL, None, "written", ("none", None), True),
        ("rules", 0, (), SQL, SQL, "written", ("clear_then_set", LEAD), False),
        ("rules", 0, (), SQL, None, "all", ("clear_then_set", LEAD), False),
        ("rules", 0, (SQL,), MQL, None, "written", ("set", SQL), False),
    ],
)
def test_demote_moves_back_only_the_stage_leadsync_last_wrote_unless_it_owns_all(
    mode: str,
    score: int,
    rule_stages: tuple[str, ...],
    current: str,
    written: str | None,
    own_stages: str,
    expected: tuple[str, str | None],
    held: bool,
) -> None:
    extra: dict[str, Any] = {"stages": []} if mode == "rules" else {}
    decision = decide(
        score, current, rule_stages=rule_stages, written=written, mode=mode, demote=True, own_stages=own_stages, **extra
    )
    assert outcome(decision) == expected
    assert decision.held is held
    if held:
        assert decision.reason.startswith(f"held back: stage {current} was not set by leadsync")


@pytest.mark.parametrize("written", [None, SQL])
def test_without_demote_nothing_is_held_back(written: str | None) -> None:
    decision = decide(10, SQL, written=written, demote=False)
    assert (decision.write, decision.held) == ("none", False)


@pytest.mark.parametrize("written", [None, SQL])
def test_never_touch_and_unmanaged_stages_keep_their_reasons(written: str | None) -> None:
    assert decide(0, "customer", written=written, demote=True).reason.startswith("stage customer is never touched")
    assert "not set by this model" in decide(0, LEAD, written=written, demote=True).reason


def test_the_held_back_reason_names_the_stage_leadsync_wrote() -> None:
    reason = decide(60, SQL, written=MQL, demote=True).reason
    assert (
        "leadsync last wrote marketingqualifiedlead" in reason and "would demote it to marketingqualifiedlead" in reason
    )
