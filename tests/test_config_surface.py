"""What an operator meets first: unknown keys with a suggestion, `validate DIR`, a schema that explains itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.config import load_portal
from sync.errors import ConfigError

MINIMAL = Path(__file__).resolve().parent / "data" / "valid" / "minimal.yaml"

TWO_MODELS = """\
portal: {id: 1, name: p, token_env: HUBSPOT_TOKEN_TEST}
models:
  - name: partners
    segment: {property: partner, equals: true}
    engagement:
      rules: [{id: click, event: email_click, points: 3}]
  - name: default
    lifecycle:
      mode: score
      stages: [{stage: marketingqualifiedlead, min_score: 50}]
      demot: true
"""


@pytest.mark.parametrize(
    ("text", "old", "new", "path", "message"),
    [
        (TWO_MODELS, "", "", "models[1].lifecycle.demot", "unknown key; did you mean 'demote'?"),
        (None, "  every: 15m", "  evry: 15m", "schedule.evry", "unknown key; did you mean 'every'?"),
        (
            None,
            "        form_name_contains: [demo]",
            "        form_name_contans: [demo]",
            "model.engagement.rules[0].form_name_contans",
            "unknown key; did you mean 'form_name_contains'?",
        ),
        # The suggestion is the key as the file spells it (`not`), not the field's Python name.
        (
            None,
            "        points: 3\n",
            "        points: 3\n        nott: {property: email, exists: false}\n",
            "model.engagement.rules[1].nott",
            "unknown key; did you mean 'not'?",
        ),
        (None, "  name: test-portal", "  name: test-portal\n  colour: blue", "portal.colour", "unknown key"),
    ],
    ids=["models-list", "schedule", "rule", "alias", "nothing-close"],
)
def test_unknown_key_suggests_the_closest_allowed_key_of_its_section(
    tmp_path: Path, text: str | None, old: str, new: str, path: str, message: str
) -> None:
    base = MINIMAL.read_text() if text is None else text
    assert old in base
    file = tmp_path / "portal.yaml"
    file.write_text(base.replace(old, new, 1) if old else base)
    with pytest.raises(ConfigError) as info:
        load_portal(file)
    (problem,) = info.value.problems
    bad_key = path.rsplit(".", 1)[1]
    line = next(i for i, text in enumerate(file.read_text().splitlines(), 1) if f"{bad_key}:" in text)
    assert (problem.line, problem.path, problem.message) == (line, path, message)
