"""What an operator meets first: unknown keys with a suggestion, `validate DIR`, a schema that explains itself."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from structlog.testing import capture_logs

from sync.cli import main
from sync.config import json_schema, load_portal
from sync.errors import ConfigError
from sync.observability import Metrics
from sync.ports import StateStore
from sync.scheduler import Service

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


# --- validate DIR: exactly the files `run --config-dir DIR` loads ----------------------------------------------


def portal_yaml(name: str, portal_id: int) -> str:
    text = MINIMAL.read_text()
    assert "  id: 1\n  name: test-portal\n" in text
    return text.replace("  id: 1\n  name: test-portal\n", f"  id: {portal_id}\n  name: {name}\n")


def service_view(folder: Path) -> tuple[list[Path], set[Path]]:
    """The files the service reads from `folder` and those it skips as broken (portals opened offline)."""

    def open_offline(file: Path, store: StateStore) -> Any:
        loaded = load_portal(file)
        return SimpleNamespace(config=loaded.config, id=loaded.config.portal.id)

    service = Service(folder, cast(StateStore, None), open_offline, metrics=Metrics())
    with capture_logs():
        service.load()
    return service.files, set(service.broken)


def test_validate_dir_reports_a_portal_id_named_by_two_files_naming_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "alpha.yaml").write_text(portal_yaml("alpha", 7000))
    (tmp_path / "beta.yaml").write_text(portal_yaml("beta", 7000))
    assert main(["validate", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert [line.split(": ok (")[0] for line in out.splitlines()] == [str(tmp_path / "alpha.yaml")]
    line = portal_yaml("beta", 7000).splitlines().index("  id: 7000") + 1
    assert err.splitlines() == [
        f"{tmp_path / 'beta.yaml'}:{line}: portal.id: portal beta (id 7000) is already defined by "
        f"{tmp_path / 'alpha.yaml'}: each portal needs a name and an id of its own; `leadsync run` would skip this file"
    ]
    # The service skips the same file.
    assert service_view(tmp_path) == ([tmp_path / "alpha.yaml", tmp_path / "beta.yaml"], {tmp_path / "beta.yaml"})


def test_validate_dir_reports_a_portal_name_named_by_two_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.yaml").write_text(portal_yaml("alpha", 7000))
    (tmp_path / "b.yml").write_text(portal_yaml("alpha", 7001))
    assert main(["validate", str(tmp_path)]) == 2
    (problem,) = capsys.readouterr().err.splitlines()
    assert problem.startswith(f"{tmp_path / 'b.yml'}:4: portal.name: portal alpha (id 7001) is already defined by ")


def test_validate_dir_checks_only_the_files_the_service_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "alpha.yaml").write_text(portal_yaml("alpha", 7000))
    (tmp_path / "beta.yml").write_text(portal_yaml("beta", 7001))
    (tmp_path / "notes.txt").write_text("not: [a portal\n")  # not YAML the service reads, and broken besides
    (tmp_path / "README.md").write_text("# portals\n")
    (tmp_path / "_base.yaml").write_text("model: {fit: {rules: []}}\n")  # a shared base: not a portal on its own
    assert main(["validate", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    checked = [Path(line.split(": ok", 1)[0]) for line in out.splitlines()]
    assert (checked, err) == ([tmp_path / "alpha.yaml", tmp_path / "beta.yml"], "")
    assert service_view(tmp_path) == (checked, set())


def test_validate_dir_without_portal_files_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("nothing here\n")
    assert main(["validate", str(tmp_path)]) == 2
    assert "no portal files" in capsys.readouterr().err


def test_the_same_portal_in_two_files_named_one_by_one_is_not_a_duplicate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two variants of one portal's file, validated side by side, never run together.
    (tmp_path / "alpha.yaml").write_text(portal_yaml("alpha", 7000))
    (tmp_path / "alpha-next.yaml").write_text(portal_yaml("alpha", 7000))
    assert main(["validate", str(tmp_path / "alpha.yaml"), str(tmp_path / "alpha-next.yaml")]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


# --- the JSON Schema explains every field ----------------------------------------------------------------------


def test_every_field_of_the_json_schema_has_a_description() -> None:
    schema = json_schema()
    sections = {"PortalConfig": schema, **schema["$defs"]}
    fields = [(section, name, prop) for section, s in sections.items() for name, prop in s["properties"].items()]
    assert len(fields) > 150  # every section's fields, the inherited ones of rules and exclusions included
    undescribed = [
        f"{section}.{name}" for section, name, prop in fields if not str(prop.get("description", "")).strip()
    ]
    assert undescribed == []
