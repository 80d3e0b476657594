"""`interests:`: product-interest scores (docs/SCORING.md section 7), named extra scores beside the lead score.

Each interest is one rule group (the full rule language), with an optional segment, decay and clamp, and its own
output properties in leadsync's group. Its outputs follow the rules of every output: leadsync's own (no HubSpot
default property), one name one meaning (no other interest's, no lead-score or account output), and never read
by a rule (a score that read its own writes would feed on itself).
"""

from __future__ import annotations

from sync.config.checks.conditions import condition
from sync.config.checks.problems import Problems
from sync.config.checks.rules import clamp as clamp_of
from sync.config.checks.rules import decay, group
from sync.config.schema import InterestModel, PortalConfig
from sync.config.walk import OUTPUT_KINDS, interest_outputs, is_hubspot_property, model_entries, output_fields
from sync.config.walk import property_reads as reads_of
from sync.core.accounts import AccountSpec
from sync.core.rules import InterestProperties, InterestSpec, RuleSetSpec
from sync.yamlsource import Path_, path_text

ROOT: Path_ = ("interests",)
GROUP = "interest"  # the breakdown group of an interest's rule lines


def interests(p: Problems, cfg: PortalConfig) -> list[InterestSpec | None]:
    """Every interest of the file, in order (None for one with problems)."""
    names: dict[str, int] = {}
    built: list[InterestSpec | None] = []
    for i, m in enumerate(cfg.interests):
        path = (*ROOT, i)
        if m.name in names:
            p.error((*path, "name"), f"duplicate interest name {m.name!r} (also interests[{names[m.name]}])")
        names.setdefault(m.name, i)
        built.append(interest(p, m, path, i))
    return built


def interest(p: Problems, m: InterestModel, path: Path_, index: int) -> InterestSpec | None:
    before = len(p)
    segment = condition(p, m.segment, (*path, "segment")) if m.segment is not None else None
    if not m.rules:
        p.error((*path, "rules"), "an interest score needs at least one rule")
    rules = group(p, m, path, GROUP, set())
    decayed = decay(p, m.decay, (*path, "decay")) if m.decay is not None else None
    clamp = clamp_of(p, m.total, path)
    outputs = {kind: name for kind, name, _ in interest_outputs(index, m)}
    if len(p) > before:
        return None
    return InterestSpec(
        name=m.name,
        rules=rules,
        properties=InterestProperties(outputs["score"], outputs.get("reasons")),
        segment=segment,
        decay=decayed,
        clamp=clamp,
    )


def check_interest_outputs(p: Problems, cfg: PortalConfig, spec: RuleSetSpec, accounts: AccountSpec | None) -> None:
    """Each interest output is leadsync's own, named once, not another output, and read by no rule."""
    others: dict[str, str] = {}  # a lead-score or account output -> what it is
    for mpath, m in model_entries(cfg):
        for kind, name, where in output_fields(cfg, mpath, m):
            others.setdefault(name, f"the lead score's {kind} ({path_text(where)})")
    if accounts is not None:
        for kind in OUTPUT_KINDS:
            others.setdefault(getattr(accounts.properties, kind), f"the account {kind} (accounts.properties.{kind})")
    readers: dict[str, Path_] = {}
    for where, name in reads_of(cfg, spec):
        readers.setdefault(name, where)
    seen: dict[str, str] = {}  # interest output -> "interest <name>'s <kind>"
    for i, interest in enumerate(cfg.interests):
        for kind, name, where in interest_outputs(i, interest):
            problem = _problem(kind, name, _default_name(interest.name, kind), seen, others, readers)
            if problem is not None:
                p.error(where, f"interest {interest.name!r}: {problem}")
            seen.setdefault(name, f"the {kind} of interest {interest.name!r}")


def _default_name(interest: str, kind: str) -> str:
    return f"ls_interest_{interest}" if kind == "score" else f"ls_interest_{interest}_{kind}"


def _problem(
    kind: str, name: str, example: str, seen: dict[str, str], others: dict[str, str], readers: dict[str, Path_]
) -> str | None:
    if is_hubspot_property(name):
        return (
            f"{name} is a HubSpot default property: leadsync writes only properties of its own; "
            f"choose another name (e.g. {example})"
        )
    if name in others:
        return f"{name} is also {others[name]}: each output needs a name of its own"
    if name in seen:
        return f"{name} is also {seen[name]}: each output needs a name of its own"
    if name in readers:
        return (
            f"{name} is read by {path_text(readers[name])}: an output a rule reads would feed leadsync's own "
            "writes back into the score; choose another name"
        )
    return None
