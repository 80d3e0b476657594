"""Training on the sandbox's planted signal: the model finds it, beats the rule score, and refuses bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.core.conditions import parse_date_ms
from sync.core.likelihood import PROPERTY, feature_values
from sync.core.model import Contact, Event
from sync.core.scoring import score_at
from sync.errors import ConfigError
from sync.learn.features import (
    DEFAULT_OUTCOME,
    Rows,
    gather,
    never_a_feature,
    parse_outcome_property,
)
from sync.learn.train import Trained, TrainingRefusedError, fit
from sync.reports.dataset import from_snapshot
from tests.factories import example_rules
from tests.learn.conftest import AS_OF_MS, HORIZON_DAYS

OWN = frozenset({"ls_score", "ls_fit", "ls_engagement", "ls_grade", "ls_reasons", "ls_scored_at"})
Inputs = list[tuple[Contact, list[Event]]]


@pytest.fixture(scope="module")
def inputs(planted_file: Path) -> Inputs:
    return list(from_snapshot(planted_file).inputs())


def rows_of(inputs: Inputs, horizon: int = HORIZON_DAYS, outcome: str = DEFAULT_OUTCOME) -> Rows:
    return gather(inputs, example_rules(), AS_OF_MS, horizon, outcome, OWN)


@pytest.fixture(scope="module")
def trained(inputs: Inputs) -> tuple[Rows, Trained]:
    rows = rows_of(inputs)
    return rows, fit(rows, example_rules())


def test_the_planted_features_have_the_largest_positive_weights(trained: tuple[Rows, Trained]) -> None:
    _, model = trained
    positive = [f.key for f, _, weight in model.weights() if weight > 0]
    assert set(positive[:2]) == {"property:jobtitle=energy manager", "form:Procurement checklist"}


def test_the_model_beats_the_rule_score_on_held_out_contacts(trained: tuple[Rows, Trained]) -> None:
    _, model = trained
    assert model.model.auc >= model.rule.auc + 0.10
    assert model.model.top_decile_lift > model.rule.top_decile_lift
    assert model.test_positives >= 30 and model.test_rows > 1000


def test_the_calibration_table_has_ten_deciles_highest_first(trained: tuple[Rows, Trained]) -> None:
    _, model = trained
    table = model.model.calibration
    assert [row["decile"] for row in table] == list(range(1, 11))
    assert table[0]["observed_rate"] > table[-1]["observed_rate"]
    assert sum(row["contacts"] for row in table) == model.test_rows


def test_contacts_converted_or_created_after_the_as_of_date_are_left_out(trained: tuple[Rows, Trained]) -> None:
    rows, _ = trained
    counts = rows.counts
    assert counts.converted_before > 0 and counts.not_yet_created > 0
    assert counts.rows == counts.read - counts.converted_before - counts.not_yet_created - counts.excluded


def test_no_feature_reads_the_stage_its_dates_or_leadsyncs_outputs(trained: tuple[Rows, Trained]) -> None:
    rows, _ = trained
    names = {f.name for f in rows.vocabulary.features if f.kind == PROPERTY}
    assert "jobtitle" in names
    assert not any(never_a_feature(n, DEFAULT_OUTCOME, OWN) for n in names)
    assert not any(n.startswith("hs_lifecyclestage_") or n == "lifecyclestage" for n in names)


def test_a_row_is_the_features_the_core_applies(inputs: Inputs, trained: tuple[Rows, Trained]) -> None:
    rows, model = trained
    rules = example_rules()
    by_id = {c.id: (c, e) for c, e in inputs}
    for row in range(0, rows.counts.rows, 500):
        contact, events = by_id[rows.ids[row]]
        start, end = rows.indptr[row], rows.indptr[row + 1]
        stored = {rows.vocabulary.features[rows.indices[k]].key: rows.data[k] for k in range(start, end)}
        hits = score_at(contact, events, rules, AS_OF_MS).breakdown
        got = feature_values(model.features, contact, events, AS_OF_MS, hits)
        assert got == [stored.get(f.key, 0.0) for f in model.features]


def test_a_property_that_records_the_outcome_is_refused_by_name(inputs: Inputs) -> None:
    until = AS_OF_MS + HORIZON_DAYS * 86_400_000
    leaky: Inputs = []
    for contact, events in inputs:
        reached = parse_date_ms(contact.properties.get(DEFAULT_OUTCOME))
        won = reached is not None and AS_OF_MS < reached <= until
        props = {**contact.properties, "deal_won": "yes" if won else "no"}
        leaky.append((replace_props(contact, props), events))
    with pytest.raises(TrainingRefusedError, match=r"property:deal_won=yes"):
        fit(rows_of(leaky), example_rules())


def replace_props(contact: Contact, props: dict[str, str]) -> Contact:
    return Contact(contact.id, props, contact.email, contact.created_at_ms, contact.lifecycle_stage, contact.list_ids)


def test_too_few_converters_are_refused_naming_the_counts(inputs: Inputs) -> None:
    rows = rows_of(inputs[:600], horizon=10)
    with pytest.raises(TrainingRefusedError, match=r"too few converters to learn from: \d+ \(at least 30 needed\)"):
        fit(rows, example_rules())


def test_a_single_class_is_refused(inputs: Inputs) -> None:
    rows = rows_of(inputs[:300], outcome="hs_lifecyclestage_no_such_stage_date")
    with pytest.raises(TrainingRefusedError, match=r"only one class: \d+ contacts .*: 0 converted"):
        fit(rows, example_rules())


def test_an_outcome_must_be_a_property_name() -> None:
    with pytest.raises(ConfigError, match="not a property name"):
        parse_outcome_property("lifecyclestage=customer")


def test_training_twice_gives_the_same_model(inputs: Inputs, trained: tuple[Rows, Trained]) -> None:
    _, first = trained
    again = fit(rows_of(inputs), example_rules())
    assert again.coefficients == first.coefficients and again.intercept == first.intercept
