"""`leadsync backtest` on a terminal: a `Backtest` (computed in `backtest`) as rich tables and warnings."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from sync.reports.backtest import AccountBacktest, Backtest, InterestBacktest
from sync.reports.text import iso_ms, lift, pct


def print_backtest(bt: Backtest, console: Console, source: str = "") -> None:
    _print_summary(bt, console, source)
    for table in (_thresholds(bt), _bands(bt), _grades(bt), _rules(bt), _holdout(bt)):
        console.print(table)
    if bt.holdout.contacts < bt.min_support:
        console.print(
            f"[dim]The holdout has {bt.holdout.contacts} contacts, fewer than {bt.min_support}: "
            "too few to compare.[/dim]"
        )
    if bt.accounts is not None:
        _print_accounts(bt.accounts, console)
    for interest in bt.interests:
        console.print(_interest_bands(interest, bt.base_rate))
    for warning in bt.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning.message}")


def _print_accounts(accounts: AccountBacktest, console: Console) -> None:
    o = accounts.overall
    console.print(
        f"[bold]Accounts[/bold]: a company converted when any of its counted contacts did: [bold]{o.converted}"
        f"[/bold] of {o.contacts} companies with counted contacts (base rate [bold]{pct(accounts.base_rate)}"
        f"[/bold]); {accounts.without_contacts} of {accounts.companies} companies have none and are left out"
    )
    base = accounts.base_rate
    bands = _table("Conversion by account band", ("account score", "companies", "converted", "rate", "lift"), ())
    for band in accounts.bands:
        c = band.counts
        bands.add_row(band.label, str(c.contacts), str(c.converted), pct(c.rate), lift(c.lift(base)))
    grades = _table("Conversion by account grade", ("grade", "companies", "converted", "rate", "lift"), ("grade",))
    for grade in accounts.grades:
        c = grade.counts
        grades.add_row(grade.grade or "-", str(c.contacts), str(c.converted), pct(c.rate), lift(c.lift(base)))
    console.print(bands)
    console.print(grades)


def _interest_bands(interest: InterestBacktest, base: float | None) -> Table:
    o = interest.overall
    title = f"Conversion by {interest.name} interest band ({o.contacts} contacts with the score, {pct(o.rate)})"
    table = _table(title, (f"{interest.name}", "contacts", "converted", "rate", "lift"), ())
    for band in interest.bands:
        c = band.counts
        table.add_row(band.label, str(c.contacts), str(c.converted), pct(c.rate), lift(c.lift(base)))
    return table


def _print_summary(bt: Backtest, console: Console, source: str) -> None:
    excluded = sum(bt.excluded.values())
    console.print(
        f"[bold]Backtest[/bold]{f' of {source}' if source else ''} as of {iso_ms(bt.now_ms)}, "
        f"rule-set version {bt.version}"
    )
    console.print(
        f"converted = {bt.outcome}: [bold]{bt.overall.converted}[/bold] of {bt.overall.contacts} scored contacts "
        f"(base rate [bold]{pct(bt.base_rate)}[/bold])"
    )
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(bt.excluded.items()))
    console.print(
        f"{bt.contacts} contacts read; {excluded} excluded and left out of the metrics"
        + (f" ({reasons})" if reasons else "")
        + (f"; {len(bt.problems)} could not be scored" if bt.problems else "")
        + (f"; {bt.not_yet_created} created after {iso_ms(bt.now_ms)} left out" if bt.not_yet_created else "")
    )


def _table(title: str, columns: tuple[str, ...], left: tuple[str, ...]) -> Table:
    table = Table(title=title, header_style="bold", title_justify="left")
    for name in columns:
        table.add_column(name, justify="left" if name in left else "right")
    return table


def _thresholds(bt: Backtest) -> Table:
    columns = ("model", "stage", "qualifies when", "qualified", "share", "precision", "recall", "lift")
    table = _table("Lifecycle thresholds", columns, ("model", "stage", "qualifies when"))
    for th in bt.thresholds:
        table.add_row(
            th.model,
            th.name,
            th.condition,
            str(th.qualified.contacts),
            pct(th.share),
            pct(th.precision),
            pct(th.recall),
            lift(th.lift),
        )
    return table


def _bands(bt: Backtest) -> Table:
    table = _table("Conversion by score band", ("score", "contacts", "converted", "rate", "lift"), ())
    for band in bt.bands:
        c = band.counts
        table.add_row(band.label, str(c.contacts), str(c.converted), pct(c.rate), lift(c.lift(bt.base_rate)))
    return table


def _grades(bt: Backtest) -> Table:
    columns = ("model", "grade", "contacts", "converted", "rate", "lift")
    table = _table("Conversion by grade", columns, ("model", "grade"))
    for grade in bt.grades:
        c = grade.counts
        table.add_row(
            grade.model, grade.grade or "-", str(c.contacts), str(c.converted), pct(c.rate), lift(c.lift(bt.base_rate))
        )
    return table


def _rules(bt: Backtest) -> Table:
    title = f"Close rate of each rule's matched contacts (* fewer than {bt.min_support} contacts: not ranked)"
    columns = ("#", "rule", "group", "contacts", "converted", "close rate", "lift")
    table = _table(title, columns, ("rule", "group"))
    for i, rule in enumerate(bt.rules):
        c = rule.counts
        table.add_row(
            "*" if rule.low_support else str(i + 1),
            rule.key + (" *" if rule.low_support else ""),
            rule.group,
            str(c.contacts),
            str(c.converted),
            pct(c.rate),
            lift(c.lift(bt.base_rate)),
            style="dim" if rule.low_support else None,
        )
    return table


def _holdout(bt: Backtest) -> Table:
    columns = ("contacts", "holdout", "rate", "written", "rate ")
    table = _table("Holdout (scored, never written) against written", columns, ("contacts",))
    table.add_row(
        "all scored", str(bt.holdout.contacts), pct(bt.holdout.rate), str(bt.written.contacts), pct(bt.written.rate)
    )
    for th in bt.thresholds:
        table.add_row(
            f"{th.model}: {th.name}",
            str(th.holdout.contacts),
            pct(th.holdout.rate),
            str(th.written.contacts),
            pct(th.written.rate),
        )
    return table
