"""`leadsync report`: one self-contained HTML file with the portal's scores, backtest and recent runs.

Everything is inside the file: charts are PNG images drawn with matplotlib's
Agg renderer (no display, no pyplot global state) and embedded as base64
data URIs, the CSS is inline, and the one script is inline too (it marks the
page once every chart has decoded, so a headless browser check can tell a
rendered page from a broken one). The file opens offline and can be mailed.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sync.ports import RunRecord, StageTransition, StateStore
from sync.reports.backtest import (
    AccountBacktest,
    Backtest,
    BandRate,
    ModelInfo,
    ThresholdResult,
    band_of,
    stage_name,
)
from sync.reports.text import iso, iso_ms, lift, pct

# Colours that read on screen and in print (and for the colour-blind: blue/orange, not red/green).
BLUE, ORANGE, GREY, DARK = "#2b6cb0", "#dd6b20", "#a0aec0", "#2d3748"
TOP_RULES = 12  # rules in the contribution chart
DPI = 110


@dataclass
class RunActivity:
    """One recent run of the portal and the stage moves it wrote."""

    run: RunRecord
    transitions: list[StageTransition] = field(default_factory=list)

    @property
    def moved(self) -> int:
        return sum(t.contacts for t in self.transitions)


def run_activity(store: StateStore, portal_id: int, limit: int = 10) -> list[RunActivity]:
    """The portal's last `limit` runs, oldest first, with their stage transitions."""
    runs = list(reversed(store.last_runs(portal_id, limit)))
    by_run: dict[str, list[StageTransition]] = {}
    for t in store.stage_transitions(portal_id, [r.run_id for r in runs]):
        by_run.setdefault(t.run_id, []).append(t)
    return [RunActivity(run, by_run.get(run.run_id, [])) for run in runs]


@dataclass
class ReportInputs:
    """What the page shows besides the backtest: where the data came from, and the store's runs."""

    portal: str
    source: str
    runs: list[RunActivity] | None  # None: no state store to read
    runs_note: str = ""  # why there are no runs to show
    problems: list[str] = field(default_factory=list)


def render_report(bt: Backtest, inputs: ReportInputs) -> str:
    """The report as one HTML document."""
    charts: list[str] = []

    def chart(chart_id: str, title: str, fig: Figure, caption: str = "") -> str:
        charts.append(chart_id)
        return (
            f'<figure><img class="chart" id="{chart_id}" alt="{_e(title)}" src="data:image/png;base64,{_png(fig)}">'
            + (f"<figcaption>{_e(caption)}</figcaption>" if caption else "")
            + "</figure>"
        )

    sections: list[str] = [_headline(bt, inputs)]
    if bt.warnings:
        items = "".join(f"<li>{_e(w.message)}</li>" for w in bt.warnings)
        sections.append(f'<section class="warnings"><h2>What to look at</h2><ul>{items}</ul></section>')

    scores = "<p>No contact was scored.</p>"
    if bt.scored:
        scores = chart(
            "chart-score-distribution",
            "Score distribution",
            _score_histogram(bt),
            "Contacts per score band; the part that converted is drawn in orange at the foot of each bar. "
            "Dashed lines are the lifecycle thresholds.",
        )
    matrix = (
        "".join(
            chart(
                f"chart-grade-matrix-{i}",
                f"Fit x engagement grades, model {name}",
                fig,
                "Contacts per fit grade (rows) and engagement grade (columns), with each cell's conversion rate.",
            )
            for i, (name, fig) in enumerate(_grade_matrices(bt))
        )
        or "<p>This rule set has no grades.</p>"
    )
    sections.append(
        f'<section class="pair"><div><h2>Scores</h2>{scores}</div><div><h2>Grades</h2>{matrix}</div></section>'
    )

    conversion = "<p>Nothing to measure: no contact was scored.</p>"
    if bt.bands:
        conversion = chart(
            "chart-conversion-by-band",
            "Conversion by score band",
            _conversion_chart(bt),
            f"Share of each band's contacts with {bt.outcome}; the grey line is the average ({pct(bt.base_rate)}).",
        )
    sections.append(
        f'<section class="pair"><div><h2>Conversion by score band</h2>{conversion}</div>'
        f"<div><h2>Lifecycle stages</h2>{_threshold_table(bt)}{_stage_rules_table(bt)}{_holdout_text(bt)}</div>"
        "</section>"
    )

    if bt.accounts is not None:
        sections.append(_accounts_section(bt.accounts, bt, chart))
    if bt.interests:
        sections.append(_interests_section(bt))

    runs_html = _runs_section(inputs, chart)
    rules_chart = "<p>No rule gave any points.</p>"
    if bt.contributions:
        rules_chart = chart(
            "chart-rule-contribution",
            "Top rules by contribution",
            _contribution_chart(bt),
            "Points each rule added (blue) and took away (orange), summed over every scored contact.",
        )
    sections.append(
        f'<section class="pair"><div><h2>Stage transitions of the last runs</h2>{runs_html}</div>'
        f"<div><h2>Top rules by contribution</h2>{rules_chart}</div></section>"
    )
    sections.append(f"<section><h2>Close rate by rule</h2>{_rules_table(bt)}</section>")
    if inputs.problems or bt.problems:
        shown = [*inputs.problems, *bt.problems]
        items = "".join(f"<li>{_e(p)}</li>" for p in shown[:50])
        more = f"<p>and {len(shown) - 50} more</p>" if len(shown) > 50 else ""
        sections.append(f"<section><h2>Records skipped</h2><ul>{items}</ul>{more}</section>")

    return _page(
        _e(f"leadsync report: {inputs.portal}"),
        _e(f"{inputs.source}, as of {iso_ms(bt.now_ms)}, rule-set version {bt.version}"),
        "\n".join(sections),
        len(charts),
    )


# -- sections -----------------------------------------------------------------------------------


def _headline(bt: Backtest, inputs: ReportInputs) -> str:
    excluded = sum(bt.excluded.values())
    cards = [
        ("contacts", f"{bt.contacts:,}", f"{bt.overall.contacts:,} scored, {excluded:,} excluded"),
        ("converted", pct(bt.base_rate), f"{bt.overall.converted:,} with {bt.outcome}"),
    ]
    for th in bt.thresholds:
        cards.append(
            (
                _threshold_label(bt, th),
                f"{th.qualified.contacts:,}",
                f"qualify; precision {pct(th.precision)}, recall {pct(th.recall)}, lift {lift(th.lift)}",
            )
        )
    for rule in bt.stage_rules:
        cards.append(
            (
                f"{rule.name} by stage rules" + (f" ({rule.model})" if _several_models(bt) else ""),
                f"{rule.qualified.contacts:,}",
                f"qualify; precision {pct(rule.precision)}, recall {pct(rule.recall)}, lift {lift(rule.lift)}",
            )
        )
    cards.append(
        (
            "holdout",
            pct(bt.holdout.rate),
            f"of {bt.holdout.contacts:,} holdout contacts converted, {pct(bt.written.rate)} of the written ones",
        )
    )
    if inputs.runs:
        last = inputs.runs[-1].run
        cards.append(("last run", last.status, f"{last.kind}, {iso(last.started_at)}"))
    body = "".join(
        f'<div class="card"><div class="label">{_e(label)}</div><div class="value">{_e(value)}</div>'
        f'<div class="note">{_e(note)}</div></div>'
        for label, value, note in cards
    )
    return f'<section class="cards">{body}</section>'


def _accounts_section(accounts: AccountBacktest, bt: Backtest, chart: _Chart) -> str:
    """Conversion by account band and by account grade: the accounts section's scores, one row per company."""
    note = (
        f"<p class='muted'>A company converted when any of its counted contacts has {_e(bt.outcome)}: "
        f"{accounts.overall.converted:,} of {accounts.overall.contacts:,} companies ({pct(accounts.base_rate)}). "
        f"{accounts.without_contacts:,} of {accounts.companies:,} companies have no counted contact and are left "
        "out.</p>"
    )
    if not accounts.bands:
        return f"<section><h2>Accounts</h2>{note}<p>No company has a counted contact.</p></section>"
    bands = chart(
        "chart-account-conversion-by-band",
        "Conversion by account band",
        _account_band_chart(accounts, bt.min_support),
        f"Share of each account band's companies that converted; the grey line is the average "
        f"({pct(accounts.base_rate)}).",
    )
    grades = "<p>The accounts section has no grades.</p>"
    if accounts.model is not None and accounts.model.fit_grades and accounts.model.engagement_grades:
        grades = chart(
            "chart-account-grade-matrix",
            "Account fit x engagement grades",
            _account_grade_matrix(accounts, accounts.model),
            "Companies per account fit grade (rows) and engagement grade (columns), with each cell's conversion rate.",
        )
    return (
        f'<section class="pair"><div><h2>Accounts: conversion by account band</h2>{note}{bands}</div>'
        f"<div><h2>Accounts: conversion by account grade</h2>{grades}</div></section>"
    )


def _interests_section(bt: Backtest) -> str:
    """Conversion by band of each product-interest score: one small table per interest."""
    base = bt.base_rate
    parts = [
        "<p class='muted'>Product-interest scores never move a stage. Each table counts the scored contacts that "
        f"have the score (those in its segment); lift is against the rate of every scored contact ({pct(base)}).</p>"
    ]
    for interest in bt.interests:
        rows = "".join(
            f"<tr><td>{_e(b.label)}</td><td>{b.counts.contacts:,}</td><td>{b.counts.converted:,}</td>"
            f"<td>{pct(b.counts.rate)}</td><td>{lift(b.counts.lift(base))}</td></tr>"
            for b in interest.bands
        )
        parts.append(
            f"<h3>{_e(interest.name)}: {interest.overall.contacts:,} contacts, {pct(interest.overall.rate)} "
            "converted</h3>"
            + (
                "<table><thead><tr><th>score</th><th>contacts</th><th>converted</th><th>rate</th><th>lift</th>"
                f"</tr></thead><tbody>{rows}</tbody></table>"
                if rows
                else "<p>No scored contact has this score.</p>"
            )
        )
    return f'<section class="interests"><h2>Product-interest scores</h2>{"".join(parts)}</section>'


def _threshold_table(bt: Backtest) -> str:
    if not bt.thresholds:
        modes = {m.lifecycle_mode for m in bt.models}
        if modes == {"rules"}:
            return "<p>Stages are set by stage rules (lifecycle mode: rules), not by score thresholds.</p>"
        if modes <= {"off"}:
            return "<p>This rule set sets no lifecycle stage (lifecycle mode: off).</p>"
        return "<p>No score thresholds in this rule set.</p>"
    rows = "".join(
        f"<tr><td>{_e(th.model)}</td><td>{_e(th.name)}</td><td>{_e(th.condition)}</td>"
        f"<td>{th.qualified.contacts:,}</td><td>{pct(th.precision)}</td><td>{pct(th.recall)}</td>"
        f"<td>{lift(th.lift)}</td></tr>"
        for th in bt.thresholds
    )
    return (
        "<table><thead><tr><th>model</th><th>stage</th><th>qualifies when</th><th>qualified</th>"
        f"<th>precision</th><th>recall</th><th>lift</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _stage_rules_table(bt: Backtest) -> str:
    """The stages the stage rules give: the only stage setting in mode: rules, an addition in mode: score."""
    if not bt.stage_rules:
        return ""
    rows = "".join(
        f"<tr><td>{_e(r.model)}</td><td>{_e(r.name)}</td><td>{r.qualified.contacts:,}</td>"
        f"<td>{pct(r.precision)}</td><td>{pct(r.recall)}</td><td>{lift(r.lift)}</td></tr>"
        for r in bt.stage_rules
    )
    return (
        "<p class='muted'>Contacts a stage rule gives the stage (or a later one), whatever their score.</p>"
        "<table><thead><tr><th>model</th><th>stage by rules</th><th>qualified</th>"
        f"<th>precision</th><th>recall</th><th>lift</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _holdout_text(bt: Backtest) -> str:
    if not bt.holdout.contacts:
        return "<p>No holdout: every scored contact is written.</p>"
    text = (
        f"<p>Holdout (scored, never written): {bt.holdout.converted:,} of {bt.holdout.contacts:,} converted "
        f"({pct(bt.holdout.rate)}); written: {bt.written.converted:,} of {bt.written.contacts:,} "
        f"({pct(bt.written.rate)}).</p>"
    )
    if bt.holdout.contacts < bt.min_support:
        text += f"<p class='muted'>Fewer than {bt.min_support} holdout contacts: too few to compare.</p>"
    return text


def _rules_table(bt: Backtest) -> str:
    if not bt.rules:
        return "<p>No rule matched any scored contact.</p>"
    base = bt.base_rate
    rows = []
    for i, rule in enumerate(bt.rules):
        c = rule.counts
        mark = ' class="low"' if rule.low_support else ""
        rows.append(
            f"<tr{mark}><td>{'*' if rule.low_support else i + 1}</td><td>{_e(rule.key)}</td><td>{_e(rule.group)}</td>"
            f"<td>{c.contacts:,}</td><td>{pct(c.rate)}</td><td>{lift(c.lift(base))}</td></tr>"
        )
    return (
        f"<p class='muted'>Conversion rate of the contacts each rule gave points to. Rules matched by fewer than "
        f"{bt.min_support} contacts are marked * and listed last: too few to rank.</p>"
        "<table><thead><tr><th>#</th><th>rule</th><th>group</th><th>contacts</th><th>close rate</th>"
        f"<th>lift</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _runs_section(inputs: ReportInputs, chart: _Chart) -> str:
    if inputs.runs is None:
        return f"<p>{_e(inputs.runs_note or 'No state store was given (--db), so there are no runs to show.')}</p>"
    if not inputs.runs:
        return f"<p>{_e(inputs.runs_note or 'The state store has no runs for this portal yet.')}</p>"
    if not any(r.transitions for r in inputs.runs):
        return f"<p>None of the last {len(inputs.runs)} runs moved a contact's lifecycle stage.</p>"
    moved = sum(r.moved for r in inputs.runs)
    return chart(
        "chart-stage-transitions",
        "Stage transitions of the last runs",
        _transitions_chart(inputs.runs),
        f"Lifecycle stage moves written by each of the last {len(inputs.runs)} runs ({moved:,} in all), oldest left.",
    )


# -- charts -------------------------------------------------------------------------------------


class _Chart(Protocol):  # render_report's chart(): id, title, figure, caption -> the figure's HTML
    def __call__(self, chart_id: str, title: str, fig: Figure, caption: str = "") -> str: ...


def _figure(width: float = 6.4, height: float = 3.6) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _score_histogram(bt: Backtest) -> Figure:
    fig = _figure()
    ax = fig.add_subplot()
    x = [b.low for b in bt.bands]
    width = bt.band_width * 0.9
    every = ", every model" if _several_models(bt) else ""
    ax.bar(x, [b.counts.contacts for b in bt.bands], width=width, align="edge", color=BLUE, label=f"scored{every}")
    ax.bar(x, [b.counts.converted for b in bt.bands], width=width, align="edge", color=ORANGE, label="converted")
    for th in bt.thresholds:
        ax.axvline(th.min_score, color=DARK, linestyle="--", linewidth=1)
        label = f" {_threshold_label(bt, th)}"
        ax.text(th.min_score, 1.0, label, transform=ax.get_xaxis_transform(), va="top", fontsize=8)
    ax.set_xlabel("score")
    ax.set_ylabel("contacts")
    ax.legend(frameon=False, fontsize=8)
    _tidy(ax)
    return fig


def _grade_matrices(bt: Backtest) -> list[tuple[str, Figure]]:
    """One fit x engagement matrix per model with grades; every grade of the model is a row or column,
    those no contact reached too (a row or column of zeros says so)."""
    out: list[tuple[str, Figure]] = []
    for model in _graded_models(bt):
        fits, engagements = list(model.fit_grades), list(model.engagement_grades)
        counts = [[0] * len(engagements) for _ in fits]
        rates: list[list[float | None]] = [[None] * len(engagements) for _ in fits]
        for g in bt.grades:
            if g.model == model.name and g.fit_grade in fits and g.engagement_grade in engagements:
                i, j = fits.index(g.fit_grade), engagements.index(g.engagement_grade)
                counts[i][j] = g.counts.contacts
                rates[i][j] = g.counts.rate
        out.append(
            (model.name, _grade_matrix(model.name if _several_models(bt) else "", fits, engagements, counts, rates))
        )
    return out


def _graded_models(bt: Backtest) -> list[ModelInfo]:
    """The models with grades; a Backtest built without model info falls back to the grades its contacts got."""
    if bt.models:
        return [m for m in bt.models if m.fit_grades and m.engagement_grades]
    out = []
    for name in dict.fromkeys(g.model for g in bt.grades):
        rows = [g for g in bt.grades if g.model == name and g.fit_grade is not None]
        rows.sort(key=lambda g: g.engagement_rank)
        fits = tuple(dict.fromkeys(g.fit_grade for g in rows if g.fit_grade is not None))
        engagements = tuple(dict.fromkeys(g.engagement_grade for g in rows if g.engagement_grade is not None))
        if fits and engagements:
            out.append(ModelInfo(name, "score", fits, engagements))
    return out


def _grade_matrix(
    title: str,
    fits: list[str],
    engagements: list[str],
    counts: list[list[int]],
    rates: list[list[float | None]],
    unit: str = "contacts",
) -> Figure:
    fig = _figure(5.2, 3.6)
    ax = fig.add_subplot()
    image = ax.imshow(counts, cmap="Blues", aspect="auto", vmin=0)
    top = max(max(r) for r in counts) or 1
    for i, row in enumerate(counts):
        for j, n in enumerate(row):
            rate = rates[i][j]
            label = f"{n:,}" + (f"\n{rate:.0%} conv." if rate is not None else "")
            ax.text(j, i, label, ha="center", va="center", fontsize=9, color="white" if n > top * 0.55 else DARK)
    ax.set_xticks(range(len(engagements)), [f"engagement {e}" for e in engagements])
    ax.set_yticks(range(len(fits)), [f"fit {f}" for f in fits])
    if title:
        ax.set_title(title if unit != "contacts" else f"model {title}", fontsize=9)
    fig.colorbar(image, ax=ax, label=unit)
    return fig


def _conversion_chart(bt: Backtest) -> Figure:
    fig = _figure()
    ax = _band_bars(fig, bt.bands, bt.base_rate, bt.min_support, "score band")
    low = bt.bands[0].low
    for th in bt.thresholds:
        position = (band_of(th.min_score, bt.band_width) - low) / bt.band_width - 0.5
        ax.axvline(position, color=DARK, linestyle="--", linewidth=1)
        label = f" {_threshold_label(bt, th)}"
        ax.text(position, 1.0, label, transform=ax.get_xaxis_transform(), va="top", fontsize=8)
    return fig


def _band_bars(fig: Figure, bands: Sequence[BandRate], base: float | None, min_support: int, xlabel: str) -> Axes:
    """Each band's conversion rate as a bar (grey under `min_support`, `n=` on top), the average as a line."""
    ax = fig.add_subplot()
    labels = [b.label for b in bands]
    rates = [(b.counts.rate or 0) * 100 for b in bands]
    colours = [BLUE if b.counts.contacts >= min_support else GREY for b in bands]
    bars = ax.bar(range(len(labels)), rates, color=colours)
    for bar, band in zip(bars, bands, strict=True):
        ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), f"n={band.counts.contacts}", ha="center",
                va="bottom", fontsize=7, color=DARK)  # fmt: skip
    if base is not None:
        ax.axhline(base * 100, color=DARK, linewidth=1, alpha=0.6)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("converted (%)")
    _tidy(ax)
    return ax


def _account_band_chart(accounts: AccountBacktest, min_support: int) -> Figure:
    fig = _figure()
    _band_bars(fig, accounts.bands, accounts.base_rate, min_support, "account score band")
    return fig


def _account_grade_matrix(accounts: AccountBacktest, model: ModelInfo) -> Figure:
    fits, engagements = list(model.fit_grades), list(model.engagement_grades)
    counts = [[0] * len(engagements) for _ in fits]
    rates: list[list[float | None]] = [[None] * len(engagements) for _ in fits]
    for g in accounts.grades:
        if g.fit_grade in fits and g.engagement_grade in engagements:
            i, j = fits.index(g.fit_grade), engagements.index(g.engagement_grade)
            counts[i][j] = g.counts.contacts
            rates[i][j] = g.counts.rate
    return _grade_matrix("accounts", fits, engagements, counts, rates, unit="companies")


def _transitions_chart(runs: Sequence[RunActivity]) -> Figure:
    """Runs as horizontal bars, oldest at the top: each run's label has a row of its own, so labels cannot
    overlap however many runs there are (the figure grows with them); the legend sits below the bars."""
    pairs = list(
        dict.fromkeys(
            (t.stage_from, t.stage_to) for r in runs for t in sorted(r.transitions, key=lambda t: -t.contacts)
        )
    )
    fig = _figure(6.4, max(3.6, 0.32 * len(runs) + 0.25 * len(pairs) + 1.4))
    ax = fig.add_subplot()
    rows = range(len(runs))
    lefts = [0] * len(runs)
    palette = ["#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#d69e2e", "#319795", "#e53e3e", "#718096"]
    for n, (stage_from, stage_to) in enumerate(pairs):
        values = [
            sum(t.contacts for t in r.transitions if (t.stage_from, t.stage_to) == (stage_from, stage_to)) for r in runs
        ]
        ax.barh(
            rows,
            values,
            left=lefts,
            color=palette[n % len(palette)],
            label=f"{_stage_label(stage_from)} -> {_stage_label(stage_to)}",
        )
        lefts = [b + v for b, v in zip(lefts, values, strict=True)]
    ax.set_yticks(rows, [f"{_short_when(r.run.started_at)} {r.run.kind}" for r in runs], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("contacts moved")
    fig.legend(frameon=False, fontsize=7, loc="outside lower center", ncols=2)
    _tidy(ax)
    return fig


def _contribution_chart(bt: Backtest) -> Figure:
    top = bt.contributions[:TOP_RULES]
    fig = _figure(6.4, max(2.4, 0.32 * len(top) + 1))
    ax = fig.add_subplot()
    names = [c.rule for c in top][::-1]
    ax.barh(names, [c.positive / 100 for c in top][::-1], color=BLUE, label="added")
    ax.barh(names, [c.negative / 100 for c in top][::-1], color=ORANGE, label="taken away")
    ax.axvline(0, color=DARK, linewidth=0.8)
    ax.set_xlabel("points, all scored contacts")
    ax.tick_params(axis="y", labelsize=8)
    ax.legend(frameon=False, fontsize=8)
    _tidy(ax)
    return fig


def _several_models(bt: Backtest) -> bool:
    return len(bt.models) > 1 or len({t.model for t in bt.thresholds} | {g.model for g in bt.grades}) > 1


def _threshold_label(bt: Backtest, th: ThresholdResult) -> str:
    """A threshold's name on a chart or card: its stage, and its model when the portal has several."""
    return f"{th.name} ({th.model})" if _several_models(bt) else th.name


def _tidy(ax: object) -> None:
    spines = getattr(ax, "spines", None)
    if spines is not None:
        spines["top"].set_visible(False)
        spines["right"].set_visible(False)


# -- text ---------------------------------------------------------------------------------------


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _stage_label(stage: str | None) -> str:
    if stage is None:
        return "(unknown)"
    return stage_name(stage) if stage else "(none)"


def _short_when(moment: datetime) -> str:
    """A chart's tick label: month, day and minute in UTC, as short as it can be read."""
    return moment.astimezone(UTC).strftime("%m-%d %H:%M")


_CSS = """
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; color: #2d3748; margin: 0; background: #f7fafc; }
main { max-width: 1240px; margin: 0 auto; padding: 16px 24px 48px; }
h1 { font-size: 22px; margin: 8px 0 2px; } h2 { font-size: 16px; margin: 0 0 8px; }
.sub, .muted, figcaption { color: #718096; font-size: 12px; }
section { background: #fff; border: 1px solid #e2e8f0; border-radius: 6px; padding: 14px 16px; margin: 14px 0; }
section.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 18px; }
section.cards { display: flex; flex-wrap: wrap; gap: 10px; background: none; border: none; padding: 0; }
.card { background: #fff; border: 1px solid #e2e8f0; border-radius: 6px; padding: 10px 14px;
        min-width: 150px; flex: 1; }
.card .label { font-size: 12px; color: #718096; text-transform: uppercase; }
.card .value { font-size: 24px; font-weight: bold; margin: 2px 0; }
.card .note { font-size: 12px; color: #4a5568; overflow-wrap: anywhere; }
.warnings { border-color: #dd6b20; background: #fffaf0; } .warnings li { margin: 6px 0; }
figure { margin: 0; } img.chart { max-width: 100%; height: auto; display: block; }
table { border-collapse: collapse; font-size: 13px; width: 100%; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #edf2f7; }
td:nth-child(n+4) { text-align: right; } tr.low td { color: #a0aec0; }
"""

# Marks each chart once decoded (data-loaded, data-box: its place on the page) and the body with the count
# (data-charts-loaded): a headless browser's DOM dump then tells a rendered page from a broken one.
_SCRIPT = """
window.addEventListener("load", function () {
  var loaded = 0;
  document.querySelectorAll("img.chart").forEach(function (img) {
    var ok = img.complete && img.naturalWidth > 0;
    var box = img.getBoundingClientRect();
    img.setAttribute("data-loaded", ok ? "1" : "0");
    img.setAttribute("data-box", [box.left + window.scrollX, box.top + window.scrollY, box.width, box.height]
      .map(Math.round).join(","));
    if (ok) { loaded += 1; }
  });
  document.body.setAttribute("data-charts-loaded", String(loaded));
});
"""


def _page(title: str, sub: str, body: str, charts: int) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n<style>{_CSS}</style>\n</head>\n"
        f'<body data-charts="{charts}">\n<main>\n<h1>{title}</h1>\n<div class="sub">{sub}</div>\n{body}\n</main>\n'
        f"<script>{_SCRIPT}</script>\n</body>\n</html>\n"
    )
