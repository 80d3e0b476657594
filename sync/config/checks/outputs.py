"""The properties leadsync writes (`properties:` and each model's overrides): its own, distinct, never read back."""

from __future__ import annotations

from sync.config.checks.problems import Problems
from sync.config.schema import PortalConfig
from sync.config.walk import is_hubspot_property, model_entries, output_fields, property_reads
from sync.core.rules import RuleSetSpec
from sync.yamlsource import Path_, path_text


def check_outputs(p: Problems, cfg: PortalConfig) -> None:
    """Outputs must be leadsync's own: no HubSpot default property, no name shared by two outputs."""
    kinds: dict[str, tuple[str, Path_]] = {}  # output name -> (kind, where it was first named)
    reported: set[Path_] = set()
    for mpath, m in model_entries(cfg):
        seen: dict[str, str] = {}
        for kind, name, where in output_fields(cfg, mpath, m):
            if where in reported:
                continue
            problem = _own_output_problem(kind, name, seen)
            if problem is None:
                seen[name] = kind
                problem = _shared_output_problem(kind, name, where, kinds)
            if problem is not None:
                reported.add(where)
                p.error(where, problem)
    _check_adopt(p, cfg, kinds)


def _own_output_problem(kind: str, name: str, seen: dict[str, str]) -> str | None:
    """Why `name` cannot be this model's `kind` output, given the outputs it already named (`seen`)."""
    if is_hubspot_property(name):
        return (
            f"{name} is a HubSpot default property: leadsync writes only properties of its own; "
            f"choose another name (e.g. ls_{kind})"
        )
    if name in seen:
        return f"{name} is also this model's {seen[name]}: each output needs a name of its own"
    return None


def _shared_output_problem(kind: str, name: str, where: Path_, kinds: dict[str, tuple[str, Path_]]) -> str | None:
    """Records where `name` was first named; a problem when another model writes another kind to it."""
    first = kinds.setdefault(name, (kind, where))
    if first[0] != kind:
        return (
            f"{name} is also the {first[0]} of another model ({path_text(first[1])}): "
            "one property holds one kind of output"
        )
    return None


def _check_adopt(p: Problems, cfg: PortalConfig, kinds: dict[str, tuple[str, Path_]]) -> None:
    for i, name in enumerate(cfg.properties.adopt):
        if is_hubspot_property(name):
            p.error(("properties", "adopt", i), f"{name} is a HubSpot default property: it cannot be adopted")
        elif name not in kinds:
            p.error(
                ("properties", "adopt", i),
                f"{name} is not an output of any model: adopt names an existing property that one of "
                "properties.score, fit, engagement, grade, reasons or scored_at writes",
            )


def check_outputs_not_read(p: Problems, cfg: PortalConfig, spec: RuleSetSpec) -> None:
    """An output that a rule reads would feed leadsync's own writes back into the score."""
    readers: dict[str, Path_] = {}
    for where, name in property_reads(cfg, spec):
        readers.setdefault(name, where)
    reported: set[Path_] = set()
    for mpath, m in model_entries(cfg):
        for _, name, where in output_fields(cfg, mpath, m):
            if name in readers and where not in reported:
                reported.add(where)
                p.error(
                    where,
                    f"{name} is read by {path_text(readers[name])}: an output a rule reads would feed "
                    "leadsync's own writes back into the score; choose another name",
                )
