"""A portal file as training and suggesting read it: its rules, without loading the model it names.

`train` writes the model a portal file's `predictive:` section names, so that file may not exist yet; the
rules it is trained on (and their version, which the model records) do not depend on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sync.config import LoadedPortal, build_portal
from sync.core.rules import compile_ruleset
from sync.errors import ConfigError
from sync.pipeline.gate import owned_properties
from sync.yamlsource import YamlError, load_with_extends

DEFAULT_LIKELIHOOD = "ls_likelihood"
DEFAULT_FACTORS = "ls_likelihood_factors"


def load_rules_only(file: str | Path) -> tuple[LoadedPortal, frozenset[str]]:
    """The portal file loaded without its `predictive:` section, and every property leadsync writes for it
    (the score's outputs and the likelihood's): never a feature."""
    path = Path(file)
    try:
        data, lines = load_with_extends(path)
    except YamlError as exc:
        raise ConfigError([exc.problem]) from exc
    section: Any = data.pop("predictive", None) if isinstance(data, dict) else None
    loaded = build_portal(data, path, lines)
    _, owned = owned_properties(compile_ruleset(loaded.rules))
    names = {spec.name for spec in owned} | {DEFAULT_LIKELIHOOD, DEFAULT_FACTORS}
    props = section.get("properties") if isinstance(section, dict) else None
    if isinstance(props, dict):
        names |= {str(v) for v in props.values()}
    return loaded, frozenset(names)
