"""The rule-set version: a hash of the normalised rule set, so an audit line names the config that scored it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from sync.core.accounts import AccountSpec
from sync.core.rules import RuleSetSpec

# Bump when the engine gives a config a different meaning, so old audit lines name the old one.
ENGINE_VERSION = "1"
# properties: output names, not scoring; predictive: the learned model, versioned by its own hash
_UNHASHED = {"version", "free_mail_domains", "properties", "predictive"}


def _canonical(value: Any) -> Any:
    """A JSON form of the built rule set in which equivalent configs look the same."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = (f for f in dataclasses.fields(value) if f.init and f.name not in _UNHASHED)
        return {"type": type(value).__name__, **{f.name: _canonical(getattr(value, f.name)) for f in fields}}
    if isinstance(value, frozenset | set):
        return sorted((_canonical(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, tuple | list):
        return [_canonical(v) for v in value]
    return value


def ruleset_version(spec: RuleSetSpec, accounts: AccountSpec | None = None) -> str:
    """A hash of the normalised rule set: what decides a score, not how the YAML spelled it or where it connects.

    The account spec, when there is one, is hashed in too; a file without one keeps the hash it always had.
    So do the interest scores: hashed when there are some (their rules, segment, decay and clamp; not their
    output names), left out of the hash of a file without any.
    """
    canonical = _canonical(spec)
    if not spec.interests:
        del canonical["interests"]
    if accounts is not None:
        canonical["accounts"] = _canonical(accounts)
    canonical["engine"] = ENGINE_VERSION
    canonical["free_mail_list"] = hashlib.sha256("\n".join(sorted(spec.free_mail_domains)).encode()).hexdigest()
    blob = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
