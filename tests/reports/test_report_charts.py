"""The report's charts read right: each model named where the portal has several, every grade kept (a grade
no contact reached is a row or column of zeros), rules mode reads as rules mode, and the stage-transition
chart's labels never overlap, however many runs it shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text

from sync.core.rules import RuleSet
from sync.ports import RunRecord, StageTransition
from sync.reports.backtest import DEFAULT_OUTCOME, Backtest, parse_outcome, run_backtest
from sync.reports.dataset import from_snapshot
from sync.reports.report import (
    ReportInputs,
    RunActivity,
    _conversion_chart,
    _grade_matrices,
    _score_histogram,
    _transitions_chart,
    render_report,
)
from tests.factories import example_data, rules_from
from tests.reports.conftest import NOW_MS

MQL, SQL = "marketingqualifiedlead", "salesqualifiedlead"
T0 = datetime.fromtimestamp(NOW_MS / 1000, UTC)


def backtest(snapshot_file: Path, rules: RuleSet) -> Backtest:
    return run_backtest(from_snapshot(snapshot_file).inputs(), rules, NOW_MS, parse_outcome(DEFAULT_OUTCOME))


def texts(fig: Figure) -> list[str]:
    fig.canvas.draw()
    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def two_models() -> RuleSet:
    data = example_data()
    base = data.pop("model")
    data["models"] = [
        {**base, "name": "energy", "segment": {"property": "industry", "in": ["ENERGY", "UTILITIES"]}},
        {**base, "name": "rest"},
    ]
    return rules_from(data)


def test_with_several_models_each_chart_names_the_model_of_what_it_shows(snapshot_file: Path) -> None:
    bt = backtest(snapshot_file, two_models())
    assert {t.model for t in bt.thresholds} == {"energy", "rest"}
    histogram = texts(_score_histogram(bt))
    conversion = texts(_conversion_chart(bt))
    for model in ("energy", "rest"):
        assert any(t.strip() == f"MQL ({model})" for t in histogram)
        assert any(t.strip() == f"SQL ({model})" for t in conversion)
    assert "scored, every model" in histogram
    matrices = _grade_matrices(bt)
    assert [name for name, _ in matrices] == ["energy", "rest"]
    assert [f"model {name}" in texts(fig) for name, fig in matrices] == [True, True]
    page = render_report(bt, ReportInputs("acme-eu", "s.json", None))
    assert "MQL (energy)" in page and "MQL (rest)" in page
    assert 'alt="Fit x engagement grades, model energy"' in page


def test_with_one_model_the_charts_do_not_repeat_its_name(snapshot_file: Path) -> None:
    bt = backtest(snapshot_file, rules_from(example_data()))
    histogram = texts(_score_histogram(bt))
    assert any(t.strip() == "MQL" for t in histogram) and not any("(default)" in t for t in histogram)
    (_, fig), *_ = _grade_matrices(bt)
    assert not any(t.startswith("model ") for t in texts(fig))


def test_a_grade_no_contact_reached_is_still_a_row_or_column_of_zeros(snapshot_file: Path) -> None:
    data = example_data()
    grades = data["model"]["grades"]
    grades["fit"].insert(0, {"grade": "S", "min": 100})  # the cap: no contact of this portal reaches it
    grades["engagement"].insert(0, {"grade": "0", "min": 100})
    bt = backtest(snapshot_file, rules_from(data))
    assert not any(g.fit_grade == "S" or g.engagement_grade == "0" for g in bt.grades)
    ((_, fig),) = _grade_matrices(bt)
    ax = fig.axes[0]
    assert next(t.get_text() for t in ax.get_yticklabels()) == "fit S"
    assert next(t.get_text() for t in ax.get_xticklabels()) == "engagement 0"
    counts = ax.get_images()[0].get_array()
    assert counts is not None and counts.shape == (4, 4)
    assert not counts[0].any() and not counts[:, 0].any() and counts.sum() == bt.overall.contacts


def rules_mode() -> RuleSet:
    data = example_data()
    data["model"]["lifecycle"].update(
        mode="rules",
        stages=[],
        rules=[
            {"stage": SQL, "when": {"property": "lifecyclestage", "in": ["opportunity", "customer"]}},
            {"stage": MQL, "when": {"property": "industry", "equals": "ENERGY"}},
        ],
    )
    return rules_from(data)


def test_in_rules_mode_the_report_shows_what_the_stage_rules_give(snapshot_file: Path) -> None:
    bt = backtest(snapshot_file, rules_mode())
    assert bt.thresholds == [] and [m.lifecycle_mode for m in bt.models] == ["rules"]
    assert [(r.stage, r.qualified.contacts > 0) for r in bt.stage_rules] == [(MQL, True), (SQL, True)]
    sql = bt.stage_rules[1]
    assert sql.precision == 1.0  # the rule reads the outcome itself: every contact it gives SQL converted
    mql = bt.stage_rules[0]
    assert mql.qualified.contacts >= sql.qualified.contacts  # a contact given SQL has passed MQL too
    page = render_report(bt, ReportInputs("acme-eu", "s.json", None))
    assert "Stages are set by stage rules (lifecycle mode: rules)" in page
    assert "No score thresholds" not in page
    assert "MQL by stage rules" in page and "SQL by stage rules" in page
    assert {k: bt.json()["stage_rules"][1][k] for k in ("model", "stage")} == {"model": "default", "stage": SQL}


def activity(count: int, pairs: int = 2) -> list[RunActivity]:
    stages = ["", "lead", MQL, SQL, "opportunity"]
    out = []
    for i in range(count):
        run = RunRecord(f"r-{i}", 1, "full" if i == 0 else "incremental", T0 + timedelta(minutes=15 * i), None, "ok")
        moves = [StageTransition(run.run_id, stages[k], stages[k + 1], 1 + i + k) for k in range(pairs)]
        out.append(RunActivity(run, moves))
    return out


def _boxes(fig: Figure) -> list[Any]:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    ax = fig.axes[0]
    (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
    shown = [t for t in ax.get_xticklabels() if x0 <= t.get_position()[0] <= x1]  # ticks past the axis are not drawn
    shown += [t for t in ax.get_yticklabels() if y0 <= t.get_position()[1] <= y1]
    labels = [t for t in shown if t.get_text()]
    legend = fig.legends[0] if fig.legends else ax.get_legend()
    assert legend is not None, "the chart has a legend"
    return [t.get_window_extent(renderer) for t in labels] + [legend.get_window_extent(renderer)]


@pytest.mark.parametrize(("runs", "pairs"), [(1, 1), (2, 2), (10, 3), (25, 4), (60, 4)])
def test_the_stage_transition_labels_never_overlap(runs: int, pairs: int) -> None:
    fig = _transitions_chart(activity(runs, pairs))
    boxes = _boxes(fig)
    assert len(boxes) > runs  # every run's label, the axis ticks and the legend
    overlapping = [(a, b) for a, b in combinations(boxes, 2) if a.overlaps(b)]
    assert overlapping == []
    width, height = fig.canvas.get_width_height()
    assert all(b.x0 >= 0 and b.y0 >= 0 and b.x1 <= width and b.y1 <= height for b in boxes)  # none cut off
