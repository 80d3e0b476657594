"""sync/yamlsource.py: line numbers, duplicate keys, YAML 1.2 booleans, `merge` and `extends:`."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from sync.yamlsource import Lines, Path_, YamlError, load_with_extends, load_yaml, merge, path_text


def write(directory: Path, name: str, text: str) -> Path:
    file = directory / name
    file.write_text(textwrap.dedent(text).lstrip("\n"))
    return file


def load_text(directory: Path, name: str, text: str) -> tuple[Any, Lines]:
    return load_yaml(write(directory, name, text))


def yaml_error(file: Path) -> YamlError:
    with pytest.raises(YamlError) as info:
        load_with_extends(file)
    return info.value


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ((), ""),
        (("model",), "model"),
        (("model", "fit", "rules", 3, "lt"), "model.fit.rules[3].lt"),
        (("exclusions", 0), "exclusions[0]"),
        (("grades", "fit", 1, "min"), "grades.fit[1].min"),
        (("a", 0, 1), "a[0][1]"),
    ],
)
def test_path_text(path: Path_, text: str) -> None:
    assert path_text(path) == text


# --- line numbers ------------------------------------------------------------------

NESTED = """
# comment
portal:
  id: 1
  rate_limit: {per_10s: 190,
               daily: 625000}
model:
  fit:
    rules:
      - id: industry
        map: {ENERGY: 10}

      - {id: size, bands: [{lt: 100, points: 3},
                           {gte: 100, points: 5}]}
  never_touch:
    - opportunity
    - customer
"""


@pytest.mark.parametrize(
    ("path", "line"),
    [
        ((), 2),
        (("portal",), 2),
        (("portal", "id"), 3),
        (("portal", "rate_limit"), 4),
        (("portal", "rate_limit", "per_10s"), 4),
        (("portal", "rate_limit", "daily"), 5),
        (("model", "fit", "rules"), 8),
        (("model", "fit", "rules", 0), 9),
        (("model", "fit", "rules", 0, "id"), 9),
        (("model", "fit", "rules", 0, "map", "ENERGY"), 10),
        (("model", "fit", "rules", 1), 12),
        (("model", "fit", "rules", 1, "bands", 0, "points"), 12),
        (("model", "fit", "rules", 1, "bands", 1), 13),
        (("model", "fit", "rules", 1, "bands", 1, "gte"), 13),
        (("model", "never_touch", 0), 15),
        (("model", "never_touch", 1), 16),
    ],
)
def test_line_of_nested_keys_and_list_items(tmp_path: Path, path: Path_, line: int) -> None:
    _, lines = load_text(tmp_path, "nested.yaml", NESTED)
    assert lines[path] == (str(tmp_path / "nested.yaml"), line)


def test_lines_cover_every_key_and_item(tmp_path: Path) -> None:
    data, lines = load_text(tmp_path, "nested.yaml", NESTED)

    def paths(node: Any, here: Path_) -> set[Path_]:
        found = {here}
        if isinstance(node, dict):
            for key, value in node.items():
                found |= paths(value, (*here, key))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                found |= paths(value, (*here, i))
        return found

    assert set(lines) == paths(data, ())


def test_empty_file_is_none_without_lines(tmp_path: Path) -> None:
    assert load_text(tmp_path, "empty.yaml", "# nothing here\n") == (None, {})


# --- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "path"),
    [
        ("a: 1\nb: 2\na: 3\n", 3, "a"),
        ("portal:\n  id: 1\n  name: x\n  id: 2\n", 4, "portal.id"),
        ("rules:\n  - id: a\n    points: 1\n    points: 2\n", 4, "rules[0].points"),
        ("map: {ENERGY: 10,\n      ENERGY: 3}\n", 2, "map.ENERGY"),
        ("map: {yes: 1, 'yes': 2}\n", 1, "map.yes"),
    ],
    ids=["top-level", "nested", "list-item", "flow-mapping", "plain-and-quoted"],
)
def test_duplicate_key_is_an_error_at_its_second_line(tmp_path: Path, text: str, line: int, path: str) -> None:
    file = write(tmp_path, "dup.yaml", text)
    problem = yaml_error(file).problem
    assert (problem.file, problem.line, problem.path, problem.message) == (str(file), line, path, "duplicate key")


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("a:\n  b: [1, 2\nc: 3\n", 3, "not valid YAML"),
        ("a: 1\n\tb: 2\n", 2, "not valid YAML"),
        ("a: 1\n---\nb: 2\n", 2, "not valid YAML"),
        ("a: 'open\n", 2, "not valid YAML"),
        ("a:\n  ? [1, 2]\n  : x\n", 2, "keys must be plain text"),
    ],
    ids=["unclosed-flow", "tab", "two-documents", "unclosed-quote", "list-as-key"],
)
def test_yaml_error_names_file_and_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    file = write(tmp_path, "bad.yaml", text)
    problem = yaml_error(file).problem
    assert (problem.file, problem.line) == (str(file), line)
    assert message in problem.message


def test_unreadable_file_is_an_error_without_line(tmp_path: Path) -> None:
    problem = yaml_error(tmp_path / "missing.yaml").problem
    assert (problem.file, problem.line, problem.path) == (str(tmp_path / "missing.yaml"), None, "")
    assert problem.message.startswith("cannot read")


# --- YAML 1.2 booleans -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "value"),
    [
        *((w, w) for w in ("yes", "no", "on", "off", "Yes", "NO", "On", "OFF", "y", "n")),
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("false", False),
        ("False", False),
        ("FALSE", False),
        ('"true"', "true"),
        ("'yes'", "yes"),
    ],
)
def test_only_true_and_false_are_booleans(tmp_path: Path, word: str, value: Any) -> None:
    data, _ = load_text(tmp_path, "b.yaml", f"value: {word}\nlist: [{word}]\nmap: {{{word}: 1}}\n")
    assert data["value"] == value
    assert type(data["value"]) is type(value)
    assert data["list"] == [value]
    # a key is always text: a boolean key is written back as it reads in YAML 1.2
    assert list(data["map"]) == [str(value).lower() if isinstance(value, bool) else value]


@pytest.mark.parametrize(
    ("word", "value"),
    [("5", 5), ("-5", -5), ("2.5", 2.5), ("null", None), ("~", None), ("'5'", "5"), ("15m", "15m")],
)
def test_other_scalars_keep_their_yaml_types(tmp_path: Path, word: str, value: Any) -> None:
    data, _ = load_text(tmp_path, "s.yaml", f"value: {word}\n")
    assert data["value"] == value
    assert type(data["value"]) is type(value)


def test_yes_no_map_keeps_string_keys(tmp_path: Path) -> None:
    data, _ = load_text(tmp_path, "m.yaml", "map: {yes: 5, no: -5, on: 1, off: 0}\n")
    assert data["map"] == {"yes": 5, "no": -5, "on": 1, "off": 0}


def test_merge_key_can_be_overridden(tmp_path: Path) -> None:
    data, _ = load_text(
        tmp_path,
        "anchors.yaml",
        """
        defaults: &defaults
          every: 15m
          timezone: UTC
        schedule:
          <<: *defaults
          timezone: Europe/Bucharest
        """,
    )
    assert data["schedule"] == {"every": "15m", "timezone": "Europe/Bucharest"}


# --- merge ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "over", "merged"),
    [
        ({"a": 1, "b": 2}, {"b": 3, "c": 4}, {"a": 1, "b": 3, "c": 4}),
        ({"a": {"x": 1, "y": {"z": 2}}}, {"a": {"y": {"w": 3}}}, {"a": {"x": 1, "y": {"z": 2, "w": 3}}}),
        ({"a": {"x": 1}}, {"a": 5}, {"a": 5}),
        ({"a": 5}, {"a": {"x": 1}}, {"a": {"x": 1}}),
        ({"a": {"x": 1}}, {"a": None}, {"a": None}),
        # lists of mappings that all carry `id` merge item by item: base order, then new items in their order
        (
            {"rules": [{"id": "a", "p": 1, "q": 1}, {"id": "b", "p": 2}]},
            {"rules": [{"id": "c", "p": 9}, {"id": "a", "p": 5}, {"id": "d"}]},
            {"rules": [{"id": "a", "p": 5, "q": 1}, {"id": "b", "p": 2}, {"id": "c", "p": 9}, {"id": "d"}]},
        ),
        # ... and so do lists of mappings that all carry `name` (models)
        (
            {"models": [{"name": "eu", "fit": {"max": 100}}, {"name": "us"}]},
            {"models": [{"name": "eu", "fit": {"min": 0}}]},
            {"models": [{"name": "eu", "fit": {"max": 100, "min": 0}}, {"name": "us"}]},
        ),
        # inside a merged item, a plain list is replaced
        (
            {"rules": [{"id": "a", "contains": ["x", "y"]}]},
            {"rules": [{"id": "a", "contains": ["z"]}]},
            {"rules": [{"id": "a", "contains": ["z"]}]},
        ),
        ({"l": [1, 2, 3]}, {"l": [4]}, {"l": [4]}),
        ({"l": [{"label": "a"}, {"label": "b"}]}, {"l": [{"label": "c"}]}, {"l": [{"label": "c"}]}),
        # a list where not every item has an id is replaced
        ({"l": [{"id": "a"}, {"p": 1}]}, {"l": [{"id": "a", "p": 2}]}, {"l": [{"id": "a", "p": 2}]}),
        ({"l": [{"id": "a", "p": 1}]}, {"l": [{"id": "a", "p": 2}, {"p": 3}]}, {"l": [{"id": "a", "p": 2}, {"p": 3}]}),
        ({"l": [{"id": "a", "p": 1}]}, {"l": []}, {"l": []}),
    ],
    ids=[
        "dict-keys",
        "nested-dicts",
        "dict-replaced-by-scalar",
        "scalar-replaced-by-dict",
        "dict-replaced-by-null",
        "id-keyed-list",
        "name-keyed-list",
        "plain-list-in-merged-item",
        "plain-list",
        "list-without-ids",
        "base-list-partly-keyed",
        "over-list-partly-keyed",
        "empty-list-replaces",
    ],
)
def test_merge(base: Any, over: Any, merged: Any) -> None:
    assert merge(base, {}, over, {})[0] == merged


def test_merge_leaves_its_inputs_alone() -> None:
    base = {"rules": [{"id": "a", "p": 1}], "s": {"x": 1}}
    over = {"rules": [{"id": "a", "p": 2}, {"id": "b"}], "s": {"y": 2}}
    before = (repr(base), repr(over))
    merge(base, {}, over, {})
    assert (repr(base), repr(over)) == before


BASE = """
schedule:
  every: 15m
  timezone: UTC
rules:
  - id: a
    points: 1
    contains: [x, y]
  - id: b
    points: 2
"""
OVER = """
schedule:
  timezone: Europe/Bucharest
rules:
  - id: c
    points: 3
  - id: a
    points: 10
    contains: [z]
"""


@pytest.mark.parametrize(
    ("path", "file", "line"),
    [
        ((), "over.yaml", 1),
        (("schedule",), "over.yaml", 1),
        (("schedule", "every"), "base.yaml", 2),
        (("schedule", "timezone"), "over.yaml", 2),
        (("rules",), "over.yaml", 3),
        # merged item a: its id from the override, points and contains from the override, at index 0
        (("rules", 0), "over.yaml", 6),
        (("rules", 0, "id"), "over.yaml", 6),
        (("rules", 0, "points"), "over.yaml", 7),
        (("rules", 0, "contains"), "over.yaml", 8),
        (("rules", 0, "contains", 0), "over.yaml", 8),
        # base-only item b stays at index 1
        (("rules", 1), "base.yaml", 8),
        (("rules", 1, "points"), "base.yaml", 9),
        # new item c is appended at index 2
        (("rules", 2), "over.yaml", 4),
        (("rules", 2, "points"), "over.yaml", 5),
    ],
)
def test_merge_line_map_points_each_path_to_its_file_and_line(
    tmp_path: Path, path: Path_, file: str, line: int
) -> None:
    base, base_lines = load_text(tmp_path, "base.yaml", BASE)
    over, over_lines = load_text(tmp_path, "over.yaml", OVER)
    merged, lines = merge(base, base_lines, over, over_lines)
    assert merged["rules"][0] == {"id": "a", "points": 10, "contains": ["z"]}
    assert lines[path] == (str(tmp_path / file), line)


def test_merge_line_map_keeps_base_lines_of_keys_the_override_leaves(tmp_path: Path) -> None:
    base, base_lines = load_text(tmp_path, "base.yaml", BASE)
    over, over_lines = load_text(tmp_path, "over.yaml", "rules:\n  - id: a\n    points: 10\n")
    merged, lines = merge(base, base_lines, over, over_lines)
    assert merged["rules"][0] == {"id": "a", "points": 10, "contains": ["x", "y"]}
    assert lines[("rules", 0, "points")] == (str(tmp_path / "over.yaml"), 3)
    assert lines[("rules", 0, "contains")] == (str(tmp_path / "base.yaml"), 7)
    assert lines[("rules", 0, "contains", 1)] == (str(tmp_path / "base.yaml"), 7)
    assert lines[("schedule", "every")] == (str(tmp_path / "base.yaml"), 2)


def test_merge_line_map_has_no_paths_of_replaced_items(tmp_path: Path) -> None:
    base, base_lines = load_text(tmp_path, "base.yaml", "l: [1, 2, 3]\n")
    over, over_lines = load_text(tmp_path, "over.yaml", "l: [4]\n")
    _, lines = merge(base, base_lines, over, over_lines)
    assert sorted(p for p in lines if p[:1] == ("l",)) == [("l",), ("l", 0)]
    assert lines[("l", 0)] == (str(tmp_path / "over.yaml"), 1)


# --- extends --------------------------------------------------------------------------------


def test_extends_is_relative_to_the_file_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "portals").mkdir()
    write(tmp_path, "shared/root.yaml", "a: 1\nb: 1\nc: 1\n")
    write(tmp_path, "shared/middle.yaml", "extends: root.yaml\nb: 2\n")
    write(tmp_path, "portals/p.yaml", "extends: ../shared/middle.yaml\nc: 3\n")
    monkeypatch.chdir(tmp_path / "portals")
    data, lines = load_with_extends(Path("p.yaml"))
    assert data == {"a": 1, "b": 2, "c": 3}
    # Base files are named relative to where the command runs, as a user would write them.
    assert lines[("a",)] == ("../shared/root.yaml", 1)
    assert lines[("b",)] == ("../shared/middle.yaml", 2)
    assert lines[("c",)] == ("p.yaml", 2)


def test_extends_key_is_not_in_the_merged_result(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", "a: 1\n")
    data, lines = load_with_extends(write(tmp_path, "p.yaml", "extends: base.yaml\nb: 2\n"))
    assert "extends" not in data
    assert not [p for p in lines if p[:1] == ("extends",)]


def test_file_without_extends_loads_as_is(tmp_path: Path) -> None:
    file = write(tmp_path, "p.yaml", "a: [1, 2]\n")
    assert load_with_extends(file) == load_yaml(file)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("# x\nextends: 5\n", "must be the path of a base YAML file"),
        ("# x\nextends: ''\n", "must be the path of a base YAML file"),
        ("# x\nextends: nowhere.yaml\n", "no such file: nowhere.yaml"),
        ("# x\nextends: .\n", "no such file: ."),
    ],
    ids=["number", "empty", "missing", "directory"],
)
def test_bad_extends_names_the_extends_line(tmp_path: Path, text: str, message: str) -> None:
    file = write(tmp_path, "p.yaml", text)
    problem = yaml_error(file).problem
    assert (problem.file, problem.line, problem.path, problem.message) == (str(file), 2, "extends", message)


def test_base_that_is_not_a_mapping_is_an_error_in_the_base(tmp_path: Path) -> None:
    base = write(tmp_path, "base.yaml", "- a\n- b\n")
    problem = yaml_error(write(tmp_path, "p.yaml", "extends: base.yaml\n")).problem
    assert (Path(problem.file), problem.line) == (base.resolve(), 1)
    assert "must be a mapping" in problem.message


def test_extends_loop_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "extends: b.yaml\n")
    write(tmp_path, "b.yaml", "extends: a.yaml\n")
    write(tmp_path, "self.yaml", "extends: self.yaml\n")
    for name in ("a.yaml", "self.yaml"):
        problem = yaml_error(tmp_path / name).problem
        assert problem.path == "extends"
        assert problem.message.startswith("extends loops:")


@pytest.mark.parametrize(
    ("key", "base", "over", "merged"),
    [
        (
            "reason",
            [{"reason": "a", "x": 1}, {"reason": "b"}],
            [{"reason": "a", "x": 2}],
            [{"reason": "a", "x": 2}, {"reason": "b"}],
        ),
        (
            "stage",
            [{"stage": "mql", "min_score": 50}],
            [{"stage": "sql", "min_score": 80}],
            [{"stage": "mql", "min_score": 50}, {"stage": "sql", "min_score": 80}],
        ),
        (
            "grade",
            [{"grade": "A", "min": 50}, {"grade": "C"}],
            [{"grade": "A", "min": 60}],
            [{"grade": "A", "min": 60}, {"grade": "C"}],
        ),
    ],
)
def test_exclusions_stages_and_grades_merge_by_their_key(key: str, base: Any, over: Any, merged: Any) -> None:
    assert merge({"l": base}, {}, {"l": over}, {})[0] == {"l": merged}


# --- hostile documents ---------------------------------------------------------------------


def test_merge_keys_take_earlier_mappings_first_and_own_keys_over_all(tmp_path: Path) -> None:
    data, lines = load_text(
        tmp_path,
        "merges.yaml",
        """
        a: &a {every: 1m, timezone: UTC}
        b: &b {every: 2m, rescore: null, timezone: Europe/Paris}
        schedule:
          <<: [*a, *b]
          timezone: Europe/Bucharest
        """,
    )
    assert data["schedule"] == {"every": "1m", "timezone": "Europe/Bucharest", "rescore": None}
    assert lines[("schedule", "timezone")][1] == 5  # the own key, not the anchor's
    assert lines[("schedule", "every")][1] == 1


@pytest.mark.parametrize(
    ("text", "line", "path", "message"),
    [
        ("a: &x [*x]\n", 1, "a[0]", "an alias inside its own anchor"),
        ("a: &x {b: 1, <<: *x}\n", 1, "a", "an alias inside its own anchor"),
        (
            "".join(f"a{i}: &a{i} [*a{i - 1}]\n" if i else "a0: &a0 [1]\n" for i in range(100)),
            1,
            "a63[0][0][0][0][0][0][0]...",
            "nested more",
        ),
        ("a: {<<: [1, 2]}\n", 1, "a", "a merge key (<<) takes a mapping or a list of mappings"),
        ("d: &d {x: 1}\na: {<<: *d, <<: *d}\n", 2, "a", "duplicate merge key"),
        ("a:\n  b: 2026-13-45\n", 2, "a.b", "'2026-13-45' is not a valid value: month must be in 1..12"),
        (f"a: {'9' * 5000}\n", 1, "a", "is not a valid value"),
        (f"a: {'9' * 20}\n", 1, "a", "too large: an integer here fits in 64 bits"),
        ("a: [1, .inf]\n", 1, "a[1]", ".inf is not a number leadsync can use"),
        ("a: 1e400\n", 1, "a", "1e400 is not a number leadsync can use"),
        ("a: -2e15\n", 1, "a", "-2e15 is too large"),
        ("? [a, b]\n: 1\n", 1, "", "keys must be plain text"),
    ],
)
def test_hostile_values_are_refused_with_line_and_path(
    tmp_path: Path, text: str, line: int, path: str, message: str
) -> None:
    problem = yaml_error(write(tmp_path, "hostile.yaml", text)).problem
    assert (problem.line, problem.path) == (line, path)
    assert message in problem.message


def test_nesting_up_to_the_limit_loads(tmp_path: Path) -> None:
    data, _ = load_text(tmp_path, "deep.yaml", "a: " + "[" * 63 + "1" + "]" * 63 + "\n")
    depth, node = 0, data["a"]
    while isinstance(node, list):
        depth, node = depth + 1, node[0]
    assert (depth, node) == (63, 1)


@pytest.mark.parametrize(
    "text",
    [
        "a: " + "[" * 100_000 + "]" * 100_000 + "\n",
        "".join(f"{'  ' * i}k{i}:\n" for i in range(2000)) + "  " * 2000 + "x: 1\n",
        "l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
        + "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 12)),
    ],
    ids=["flow", "block", "aliases"],
)
def test_deep_or_exploding_documents_are_refused_without_hanging(tmp_path: Path, text: str) -> None:
    file = write(tmp_path, "hostile.yaml", text)
    started = time.perf_counter()
    problem = yaml_error(file).problem
    assert time.perf_counter() - started < 5  # a guard against a hang, not a benchmark
    assert problem.line is not None
    assert (
        "nested more than 64 levels" in problem.message
        or "a portal file never needs more than 50,000" in problem.message
    )
