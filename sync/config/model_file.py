"""The learned likelihood's model file: plain JSON, sealed by a hash of its own content.

`leadsync train` writes it (`seal`, `write_model`); a portal file names it under `predictive:` and the worker,
`validate` and `explain` read it (`read_model`), which refuses a file whose hash does not match its content:
a file edited by hand or damaged is never applied. The hash is taken over the canonical JSON of everything
but the `version` field (sorted keys, no spaces), so it names the model exactly.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sync.core.likelihood import FEATURE_KINDS, Feature, LikelihoodModel
from sync.errors import ConfigError, ConfigProblem

FORMAT = "leadsync-likelihood/1"
MAX_MODEL_BYTES = 20_000_000  # a model of thousands of features is a fraction of this


class FeatureEntry(BaseModel):
    """One feature of the file: what it reads, and its coefficient (log-odds per unit of value)."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    name: str = Field(min_length=1)
    value: str = ""
    low: float | None = None
    high: float | None = None
    days: int = 0
    label: str = ""
    coefficient: float
    scale: float = 1.0  # the value's spread in training: coefficient x scale ranks features on one footing

    @field_validator("kind")
    @classmethod
    def _known(cls, kind: str) -> str:
        if kind not in FEATURE_KINDS:
            raise ValueError(f"unknown feature kind {kind!r}; one of {', '.join(sorted(FEATURE_KINDS))}")
        return kind

    @field_validator("coefficient", "scale")
    @classmethod
    def _finite(cls, number: float) -> float:
        if not math.isfinite(number):
            raise ValueError("must be a finite number")
        return number

    def feature(self) -> Feature:
        return Feature(self.kind, self.name, self.value, self.low, self.high, self.days)


class ModelFile(BaseModel):
    """The whole file. `training` and `metrics` are what `train` reported; only the features, coefficients
    and intercept are applied."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["leadsync-likelihood/1"]
    version: str
    ruleset_version: str
    intercept: float
    features: list[FeatureEntry]
    training: dict[str, Any] = {}
    metrics: dict[str, Any] = {}

    def model(self) -> LikelihoodModel:
        return LikelihoodModel(
            self.version,
            tuple(f.feature() for f in self.features),
            tuple(f.coefficient for f in self.features),
            self.intercept,
            self.ruleset_version,
        )


def content_hash(content: dict[str, Any]) -> str:
    """The hash of a model file's content (every field but `version`), over its canonical JSON."""
    body = {k: v for k, v in content.items() if k != "version"}
    blob = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def seal(content: dict[str, Any]) -> dict[str, Any]:
    """The content with its `version` hash, `format` first: what `write_model` writes."""
    body = {"format": FORMAT, **{k: v for k, v in content.items() if k not in ("format", "version")}}
    return {"format": FORMAT, "version": content_hash(body), **{k: v for k, v in body.items() if k != "format"}}


def write_model(path: str | Path, content: dict[str, Any]) -> dict[str, Any]:
    """Seal and write a model file (through a temporary file, so a half-written model is never read)."""
    sealed = seal(content)
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    partial.write_text(json.dumps(sealed, indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")
    partial.replace(target)
    return sealed


def read_model(path: str | Path, where: str = "") -> tuple[LikelihoodModel, ModelFile]:
    """The model a file holds, checked: readable JSON of the model file's shape, whose hash matches its content.

    ConfigError otherwise, naming the file (and `where`, the field of the portal file that names it)."""
    file = Path(path)

    def refuse(message: str) -> ConfigError:
        return ConfigError([ConfigProblem(str(file), None, where, message)])

    try:
        if file.stat().st_size > MAX_MODEL_BYTES:
            raise refuse(f"is larger than {MAX_MODEL_BYTES} bytes: not a model file leadsync wrote")
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise refuse("no such model file: train one with `leadsync train ... --out FILE`") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise refuse(f"cannot be read: {exc}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise refuse(f"is not JSON (line {exc.lineno}: {exc.msg}): the model file is damaged") from None
    if not isinstance(raw, dict):
        raise refuse("is not a model file: a JSON object was expected")
    if raw.get("format") != FORMAT:
        raise refuse(f"is not a model file of this leadsync (format {raw.get('format')!r}, expected {FORMAT!r})")
    expected = content_hash(raw)
    if raw.get("version") != expected:
        raise refuse(
            f"its version hash {raw.get('version')!r} does not match its content ({expected}): the file was "
            "edited by hand or damaged, and is refused; train the model again rather than editing it"
        )
    try:
        parsed = ModelFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        place = ".".join(str(p) for p in first["loc"])
        raise refuse(f"{place}: {first['msg']}") from None
    return parsed.model(), parsed
