"""`model:` or `models:`: each model's segment, rule groups, clamp, grades and lifecycle.

Models are tried in file order and the first whose segment matches takes the contact, so a model without
a segment takes every contact left: a model after it could never be reached.
"""

from __future__ import annotations

from sync.config.checks.conditions import condition
from sync.config.checks.grades import grades as build_grades
from sync.config.checks.lifecycle import lifecycle as build_lifecycle
from sync.config.checks.problems import Problems
from sync.config.checks.rules import clamp as clamp_of
from sync.config.checks.rules import decay, group
from sync.config.schema import LifecycleModel, PortalConfig, PropertiesModel, ScoringModel
from sync.config.walk import model_entries
from sync.core.rules import ModelSpec, OutputProperties
from sync.yamlsource import Path_


def models(p: Problems, cfg: PortalConfig) -> list[ModelSpec | None]:
    """Every model of the file, in order (None for one with problems)."""
    if cfg.model is not None and cfg.models is not None:
        p.error(("models",), "give either model or models, not both")
    if cfg.model is None and not cfg.models:
        p.error((), "no scoring model: add model (or models)")
    names: set[str] = set()
    built = []
    catch_all: str | None = None
    for path, m in model_entries(cfg):
        if m.name in names:
            p.error((*path, "name"), f"duplicate model name {m.name!r}")
        names.add(m.name)
        if catch_all is not None:
            p.error(path, f"unreachable: model {catch_all!r} before it has no segment and takes every contact")
        if m.segment is None:
            catch_all = m.name
        built.append(model(p, m, path, cfg.properties))
    return built


def model(p: Problems, m: ScoringModel, path: Path_, base_props: PropertiesModel) -> ModelSpec | None:
    before = len(p)
    segment = condition(p, m.segment, (*path, "segment")) if m.segment is not None else None
    ids: set[str] = set()
    fit = group(p, m.fit, (*path, "fit"), "fit", ids)
    engagement = group(p, m.engagement, (*path, "engagement"), "engagement", ids)
    decayed = decay(p, m.engagement.decay, (*path, "engagement", "decay")) if m.engagement.decay else None
    clamp = clamp_of(p, m.total, path)
    grades = build_grades(p, m.grades, (*path, "grades")) if m.grades is not None else None
    lifecycle = build_lifecycle(p, m.lifecycle or LifecycleModel(mode="off"), (*path, "lifecycle"), grades)
    _check_reachable(p, m, path, clamp)
    overrides = m.properties.model_dump(exclude_none=True) if m.properties else {}
    props = OutputProperties(**{**base_props.model_dump(exclude={"adopt"}), **overrides}, adopt=tuple(base_props.adopt))
    if len(p) > before:
        return None
    return ModelSpec(
        name=m.name,
        segment=segment,
        fit=fit,
        engagement=engagement,
        decay=decayed,
        clamp=clamp,
        grades=grades,
        lifecycle=lifecycle,
        properties=props,
    )


def _check_reachable(p: Problems, m: ScoringModel, path: Path_, clamp: tuple[int, int] | None) -> None:
    """Thresholds no score can reach: above the clamp, or a grade above its group's cap."""
    if clamp is not None and m.lifecycle is not None:
        for i, st in enumerate(m.lifecycle.stages):
            if st.min_score > clamp[1]:
                p.error(
                    (*path, "lifecycle", "stages", i, "min_score"),
                    f"can never be reached: scores are clamped to at most {clamp[1]}",
                )
    if m.grades is not None:
        for part, cap in (("fit", m.fit.max), ("engagement", m.engagement.max)):
            for i, band in enumerate(getattr(m.grades, part)):
                if cap is not None and band.min is not None and band.min > cap:
                    p.error((*path, "grades", part, i, "min"), f"can never be reached: {part} is capped at {cap:g}")
