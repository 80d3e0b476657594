"""A model's `grades:`: fit and engagement bands from the highest min down, the last catching the rest."""

from __future__ import annotations

import string

from sync.config.checks.problems import Problems
from sync.config.schema import GradeModel, GradesModel
from sync.core.rules import GradeBand, Grades
from sync.yamlsource import Path_


def grades(p: Problems, g: GradesModel, path: Path_) -> Grades:
    bands: dict[str, tuple[GradeBand, ...]] = {}
    for part in ("fit", "engagement"):
        items: list[GradeModel] = getattr(g, part)
        _check_bands(p, items, (*path, part))
        bands[part] = tuple(GradeBand(b.grade, b.min) for b in items)
    fields = {f for _, f, _, _ in string.Formatter().parse(g.label) if f is not None}
    if not fields <= {"fit", "engagement"}:
        p.error((*path, "label"), "may use only {fit} and {engagement}")
    return Grades(fit=bands["fit"], engagement=bands["engagement"], label=g.label)


def _check_bands(p: Problems, items: list[GradeModel], path: Path_) -> None:
    seen: set[str] = set()
    for i, item in enumerate(items):
        here = (*path, i)
        if item.grade in seen:
            p.error((*here, "grade"), f"duplicate grade {item.grade!r}")
        seen.add(item.grade)
        last = i == len(items) - 1
        if item.min is None and not last:
            p.error((*here, "min"), "only the last grade may omit min (it catches the rest)")
        if last and item.min is not None:
            p.error(here, "the last grade must omit min so that every contact gets a grade")
        previous = items[i - 1].min if i else None
        if item.min is not None and previous is not None and item.min >= previous:
            p.error((*here, "min"), "grades must be listed from the highest min down")
