"""Loading a portal config: YAML (with `extends:`) -> validated PortalConfig -> the core's RuleSetSpec.

Structure (types, unknown keys) is checked by pydantic; meaning (duplicate
rule ids, stages out of order, conditions that can never match, a token
pasted where a variable name belongs) by `sync.config.checks`, which also turns
the config into the core's frozen values. Every problem names the file, the
line and the field path, and all problems are reported at once.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sync.config.checks import Locator, Problems, build_ruleset
from sync.config.schema import PortalConfig, keys_at
from sync.core.accounts import AccountSpec
from sync.core.rules import RuleSetSpec
from sync.errors import ConfigError, ConfigProblem
from sync.yamlsource import Lines, Path_, YamlError, load_with_extends, load_yaml


@dataclass(frozen=True)
class LoadedPortal:
    path: Path
    config: PortalConfig
    rules: RuleSetSpec
    accounts: AccountSpec | None = None  # the `accounts:` section, None without one
    lines: Lines = field(default_factory=dict, compare=False, repr=False)  # where each key is, for later problems


def portal_files(config_dir: Path) -> list[Path]:
    """The portal files the service runs from a folder, in the order it loads them.

    Every `*.y*ml` file, sorted by name; a name starting with `_` is a shared base for `extends:`, not a portal.
    """
    return [f for f in sorted(config_dir.glob("*.y*ml")) if not f.name.startswith("_")]


def duplicate_portals(loaded: Sequence[LoadedPortal]) -> dict[Path, ConfigProblem]:
    """Each file naming a portal (by name or id) that an earlier file already names, which the service skips."""
    problems: dict[Path, ConfigProblem] = {}
    kept: list[LoadedPortal] = []
    for one in loaded:
        portal = one.config.portal
        twin = next((k for k in kept if k.config.portal.id == portal.id or k.config.portal.name == portal.name), None)
        if twin is None:
            kept.append(one)
            continue
        key = "id" if twin.config.portal.id == portal.id else "name"
        problems[one.path] = Locator(str(one.path), one.lines)(
            ("portal", key),
            f"portal {portal.name} (id {portal.id}) is already defined by {twin.path}: each portal needs a "
            "name and an id of its own; `leadsync run` would skip this file",
        )
    return problems


def load_portal(file: str | Path) -> LoadedPortal:
    """Load, merge, validate and build one portal config; ConfigError lists every problem."""
    path = Path(file)
    try:
        data, lines = load_with_extends(path)
    except YamlError as exc:
        raise ConfigError([exc.problem]) from exc
    try:
        return build_portal(data, path, lines)
    except (RecursionError, ValueError, OverflowError, TypeError) as exc:
        # The loader's bounds keep these out; should one still slip through, it is this file's problem,
        # reported as one, not a traceback.
        raise ConfigError(
            [ConfigProblem(str(path), None, "", f"cannot be loaded: {type(exc).__name__}: {exc}")]
        ) from exc


def portal_name(file: Path) -> str | None:
    """The `portal.name` a file gives, if it can be read: to name a portal whose file is broken."""
    try:
        data, _ = load_yaml(file, check_numbers=False)
    except YamlError:
        return None
    portal = data.get("portal") if isinstance(data, dict) else None
    name = portal.get("name") if isinstance(portal, dict) else None
    return name if isinstance(name, str) and name else None


def build_portal(data: Any, path: Path, lines: Lines | None = None) -> LoadedPortal:
    """Validate and build a config already parsed into `data` (`lines` locate its keys)."""
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem(str(path), 1, "", "a portal config must be a YAML mapping")])
    locate = Locator(str(path), lines or {})
    try:
        config = PortalConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_pydantic_problems(exc, data, locate)) from exc
    problems = Problems(locate)
    built = build_ruleset(problems, config)
    if problems.items or built is None:
        raise ConfigError(problems.items)
    spec, account_spec = built
    return LoadedPortal(path=path, config=config, rules=spec, accounts=account_spec, lines=lines or {})


def _pydantic_problems(exc: ValidationError, data: Any, locate: Locator) -> list[ConfigProblem]:
    """pydantic's errors, with union-member names dropped from paths and one line per field."""
    by_path: dict[Path_, list[str]] = {}
    for err in exc.errors():
        path: list[str | int] = []
        node = data
        for part in err["loc"]:
            in_dict = isinstance(node, dict) and part in node
            in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
            if in_dict or in_list:
                node = node[part]
            elif err["type"] in ("extra_forbidden", "missing") and part == err["loc"][-1]:
                pass
            else:
                continue
            path.append(part)
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key" + _did_you_mean(path)
        elif err["type"] == "missing":
            message = "required key is missing"
        messages = by_path.setdefault(tuple(path), [])
        if message not in messages:
            messages.append(message)
    return [locate(p, "; or ".join(m)) for p, m in by_path.items()]


def _did_you_mean(path: list[str | int]) -> str:
    """'; did you mean ...?' naming the allowed key of that section closest to a misspelt one, if any is close."""
    if not path or not isinstance(path[-1], str):
        return ""
    close = difflib.get_close_matches(path[-1], keys_at(path[:-1]), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
