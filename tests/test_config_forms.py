"""The `forms:` key: which forms' submissions are read (README "What counts")."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from sync.config import FormsModel, load_portal
from sync.errors import ConfigError
from sync.hubspot.shapes import DEFAULT_FORM_TYPES, FORM_TYPES

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "portals" / "example.yaml"


def with_forms(tmp_path: Path, forms_yaml: str) -> Path:
    file = tmp_path / "portal.yaml"
    file.write_text(EXAMPLE.read_text() + "\n" + forms_yaml)
    return file


def test_by_default_every_form_type_but_blog_comments_is_read() -> None:
    assert load_portal(EXAMPLE).config.forms.types == ["hubspot", "captured", "flow"]
    assert tuple(FormsModel().types) == DEFAULT_FORM_TYPES


def test_the_config_knows_the_form_types_the_adapter_knows() -> None:
    (annotation,) = typing.get_args(FormsModel.model_fields["types"].annotation)
    assert typing.get_args(annotation) == FORM_TYPES


def test_a_portal_may_read_blog_comments_too(tmp_path: Path) -> None:
    file = with_forms(tmp_path, "forms:\n  types: [hubspot, captured, flow, blog_comment]\n")
    assert load_portal(file).config.forms.types == ["hubspot", "captured", "flow", "blog_comment"]


@pytest.mark.parametrize(
    ("forms_yaml", "path", "message"),
    [
        ("forms:\n  types: [hubspot, popup]\n", "forms.types[1]", "'hubspot', 'captured', 'flow' or 'blog_comment'"),
        ("forms:\n  types: []\n", "forms.types", "at least 1 item"),
        ("forms:\n  kinds: [flow]\n", "forms.kinds", "unknown key"),
    ],
)
def test_a_bad_forms_key_names_file_line_and_field(tmp_path: Path, forms_yaml: str, path: str, message: str) -> None:
    file = with_forms(tmp_path, forms_yaml)
    with pytest.raises(ConfigError) as info:
        load_portal(file)
    (problem,) = info.value.problems
    line = file.read_text().splitlines().index(forms_yaml.splitlines()[1]) + 1
    assert (problem.file, problem.line, problem.path) == (str(file), line, path)
    assert message in problem.message
