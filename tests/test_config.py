"""Portal config loading and `leadsync validate`.

Every file in tests/data/broken/ is tests/data/valid/minimal.yaml (or a portal laid on a base) with one
defect; the table below says which problem each must report: the file, the line and the field path.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from jsonschema.exceptions import best_match

from sync.cli import main
from sync.config import build_portal, json_schema, load_portal
from sync.core.rules import BandRule, Rule
from sync.errors import ConfigError, ConfigProblem
from sync.yamlsource import load_with_extends, load_yaml

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
BROKEN = DATA / "broken"
VALID = DATA / "valid"
EXAMPLE = ROOT / "config" / "portals" / "example.yaml"
SCHEMA_FILE = ROOT / "config" / "leadsync.schema.json"
TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"


@dataclass(frozen=True)
class Expected:
    line: int
    path: str
    message: str  # a substring of the problem's message
    file: str | None = None  # relative to tests/data/broken; None: the file the case loads


def problems_of(file: Path) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as info:
        load_portal(file)
    assert info.value.problems, "ConfigError without problems"
    return info.value.problems


# --- every broken file and the problems it must report ------------------------------

BROKEN_CASES: dict[str, list[Expected]] = {
    "unknown-key.yaml": [Expected(16, "model.fit.rules[0].weight", "unknown key")],
    "wrong-type.yaml": [Expected(26, "model.engagement.rules[0].points", "valid number")],
    "missing-token-env.yaml": [Expected(2, "portal.token_env", "required key is missing")],
    "duplicate-rule-id.yaml": [Expected(27, "model.engagement.rules[1].id", "duplicate rule id 'demo-request'")],
    "stages-not-ascending.yaml": [
        Expected(38, "model.lifecycle.stages[1].stage", "stages must ascend in lifecycle order"),
        Expected(39, "model.lifecycle.stages[1].min_score", "min_score must ascend: 50 is not above 80"),
    ],
    "stages-order-not-ascending.yaml": [
        Expected(37, "model.lifecycle.stages[1].stage", "marketingqualifiedlead is not after salesqualifiedlead")
    ],
    "stages-min-score-not-ascending.yaml": [
        Expected(38, "model.lifecycle.stages[1].min_score", "min_score must ascend: 40 is not above 50")
    ],
    "token-pasted.yaml": [Expected(5, "portal.token_env", "looks like a token pasted")],
    "never-matches-numeric.yaml": [Expected(16, "model.fit.rules[1]", "can never match: the numeric bounds")],
    "never-matches-band.yaml": [Expected(20, "model.fit.rules[1].bands[1]", "can never match")],
    "never-matches-event-filter.yaml": [
        Expected(25, "model.engagement.rules[0].url_contains", "url_contains applies to email_click events")
    ],
    "never-matches-count.yaml": [Expected(26, "model.engagement.rules[0].count", "can never match: the count bounds")],
    "never-matches-when.yaml": [Expected(30, "model.engagement.rules[1].when", "can never match: the date bounds")],
    "duplicate-yaml-key.yaml": [Expected(27, "model.engagement.rules[0].points", "duplicate key")],
    # PyYAML notices the unclosed `{` of line 15 when it reaches line 16.
    "bad-yaml-syntax.yaml": [Expected(16, "", "not valid YAML")],
    "unknown-stage.yaml": [Expected(35, "model.lifecycle.stages[0].stage", "unknown stage 'marketing_qualified_lead'")],
    "grades-out-of-order.yaml": [Expected(31, "model.grades.fit[1].min", "from the highest min down")],
    "bad-cron.yaml": [Expected(8, "schedule.rescore", "not a valid cron expression")],
    "bad-timezone.yaml": [Expected(9, "schedule.timezone", "unknown time zone 'Europe/Bucharet'")],
    "min-fit-grade-unknown.yaml": [Expected(39, "model.lifecycle.stages[1].min_fit_grade", "'D' is not a fit grade")],
    "rule-without-points.yaml": [Expected(23, "model.engagement.rules[0].points", "needs points")],
    "map-rule-with-contains.yaml": [Expected(16, "model.fit.rules[0].contains", "a map rule takes no contains")],
    "extends-missing-file.yaml": [Expected(2, "extends", "no such file: bases/no-such-base.yaml")],
    # An error in the base is reported in the base, even inside a rule the portal overrides.
    "extends-broken-base.yaml": [
        Expected(12, "model.fit.rules[0].weight", "unknown key", file="bases/unknown-key-base.yaml")
    ],
    "extends-bad-yaml-base.yaml": [Expected(12, "", "not valid YAML", file="bases/bad-yaml-base.yaml")],
    # A loop is reported at the extends: line that closes it.
    "extends-loop-a.yaml": [Expected(2, "extends", "extends loops", file="extends-loop-b.yaml")],
    "extends-loop-b.yaml": [Expected(2, "extends", "extends loops", file="extends-loop-a.yaml")],
    # A repeated id in the portal's list is not merged away over the base.
    "extends-duplicate-rule-id.yaml": [Expected(14, "model.engagement.rules[1].id", "duplicate rule id 'webinar'")],
    # Hostile input: refused while loading, before anything is expanded or recursed into.
    "alias-bomb.yaml": [Expected(44, "lol4", "expands to 66,430 values")],
    "merge-key-bomb.yaml": [Expected(44, "m4", "expands to 112,222 values")],
    "deep-nesting.yaml": [Expected(40, "free_mail_domains", "nested more than 64 levels deep")],
    "deep-conditions.yaml": [
        Expected(91, "model.engagement.rules[1].when.not.not.not...", "nested more than 64 levels deep")
    ],
    "points-nan.yaml": [Expected(26, "model.engagement.rules[0].points", ".nan is not a number leadsync can use")],
    "band-bound-inf.yaml": [Expected(19, "model.fit.rules[1].bands[0].gt", "-.inf is not a number leadsync can use")],
    "points-1e308.yaml": [Expected(26, "model.engagement.rules[0].points", "1e308 is too large")],
    "points-beyond-a-million.yaml": [
        Expected(29, "model.engagement.rules[1].points", "points must be between -1,000,000 and 1,000,000")
    ],
    "grade-min-huge.yaml": [Expected(31, "model.grades.fit[0].min", "points must be between -1,000,000 and 1,000,000")],
    "within-days-absurd.yaml": [
        Expected(26, "model.engagement.rules[0].within_days", "days must be between 0 and 36,500")
    ],
    # pydantic alone would read true as 1 and false as 0.
    "points-true.yaml": [Expected(26, "model.engagement.rules[0].points", "must be a number, not true")],
    "min-score-false.yaml": [Expected(36, "model.lifecycle.stages[0].min_score", "must be a number, not false")],
    "base-url-plain-http.yaml": [Expected(6, "portal.base_url", "the token would travel in clear: use https://")],
}


def test_every_broken_file_has_expected_problems() -> None:
    on_disk = {p.name for p in BROKEN.glob("*.yaml")}
    assert on_disk == set(BROKEN_CASES)


@pytest.mark.parametrize(("name", "expected"), BROKEN_CASES.items(), ids=list(BROKEN_CASES))
def test_broken_config_reports_file_line_and_path(name: str, expected: list[Expected]) -> None:
    problems = problems_of(BROKEN / name)
    got = [(Path(p.file).resolve(), p.line, p.path) for p in problems]
    assert got == [(BROKEN / (e.file or name), e.line, e.path) for e in expected]
    for problem, e in zip(problems, expected, strict=True):
        assert e.message in problem.message


def test_semantic_problems_are_all_reported_at_once(tmp_path: Path) -> None:
    text = (VALID / "minimal.yaml").read_text()
    for old, new in [
        ("timezone: Europe/Bucharest", "timezone: Mars/Olympus"),
        ("- id: email-click", "- id: demo-request"),
        ("stage: marketingqualifiedlead", "stage: mql"),
    ]:
        assert text.count(old) == 1
        text = text.replace(old, new)
    (tmp_path / "three.yaml").write_text(text)
    problems = problems_of(tmp_path / "three.yaml")
    assert sorted((p.line, p.path) for p in problems) == [
        (9, "schedule.timezone"),
        (27, "model.engagement.rules[1].id"),
        (35, "model.lifecycle.stages[0].stage"),
    ]


# --- extends ---------------------------------------------------------------------------


def test_extends_merges_the_portal_onto_its_base() -> None:
    config = load_portal(VALID / "extends-portal.yaml").config
    assert (config.portal.id, config.portal.name, config.portal.token_env) == (2, "acme-us", "HUBSPOT_TOKEN_ACME_US")
    # mappings merge key by key
    assert (config.schedule.every, config.schedule.rescore, config.schedule.timezone) == (
        "15m",
        "0 3 * * *",
        "America/New_York",
    )
    assert config.model is not None
    assert [r.id for r in config.model.fit.rules] == ["industry", "company-size"]
    # rule lists merge by id: base rules keep their place, an overridden rule keeps the keys it does not
    # override, a new rule is appended; a plain list (form_name_contains) is replaced, not merged
    engagement = {r.id: r for r in config.model.engagement.rules}
    assert list(engagement) == ["demo-request", "email-click", "webinar"]
    demo = engagement["demo-request"]
    assert (demo.event, demo.points, demo.form_name_contains) == ("form_submission", 50, ["demo", "trial"])
    assert (engagement["email-click"].points, engagement["webinar"].points) == (3, 15)
    assert config.model.grades is not None
    assert [g.grade for g in config.model.grades.fit] == ["A", "B", "C"]


def points_of(rule: Rule) -> object:
    """A rule's points (cents, or cents by value); band rules have theirs per band."""
    assert not isinstance(rule, BandRule), rule
    return rule.points


def test_extends_builds_the_merged_rules() -> None:
    spec = load_portal(VALID / "extends-portal.yaml").rules
    (model,) = spec.models
    assert [(r.id, points_of(r)) for r in model.engagement.rules] == [
        ("demo-request", 5000),
        ("email-click", 300),
        ("webinar", 1500),
    ]


@pytest.mark.parametrize(
    ("override", "file", "line", "path"),
    [
        # a key the portal overrides inside a base rule: the portal's line
        ("      - id: demo-request\n        points: lots\n", "portal.yaml", 7, "model.engagement.rules[0].points"),
        # a rule the portal adds: the portal's line
        (
            "      - id: webinar\n        event: webinar\n        points: 1\n",
            "portal.yaml",
            7,
            "model.engagement.rules[2].event",
        ),
        # a key the base holds inside a rule the portal overrides: the base's line
        (
            "      - id: demo-request\n        event: email_click\n",
            "base.yaml",
            21,
            "model.engagement.rules[0].form_name_contains",
        ),
    ],
    ids=["overridden-key", "added-rule", "base-key-in-overridden-rule"],
)
def test_extends_error_is_reported_in_the_file_that_holds_the_value(
    tmp_path: Path, override: str, file: str, line: int, path: str
) -> None:
    (tmp_path / "base.yaml").write_bytes((VALID / "bases" / "base.yaml").read_bytes())
    portal = "extends: base.yaml\nportal: {id: 1, name: p, token_env: T}\nmodel:\n  engagement:\n    rules:\n"
    (tmp_path / "portal.yaml").write_text(portal + override)
    (problem,) = problems_of(tmp_path / "portal.yaml")
    assert (Path(problem.file).resolve(), problem.line, problem.path) == ((tmp_path / file).resolve(), line, path)


def test_extends_error_left_in_the_base_is_reported_in_the_base(tmp_path: Path) -> None:
    base = (VALID / "bases" / "base.yaml").read_text().replace("        points: 3\n", "        points: three\n")
    (tmp_path / "base.yaml").write_text(base)
    (tmp_path / "portal.yaml").write_text("extends: base.yaml\nportal: {id: 1, name: p, token_env: T}\n")
    (problem,) = problems_of(tmp_path / "portal.yaml")
    assert (Path(problem.file).resolve(), problem.line, problem.path) == (
        (tmp_path / "base.yaml").resolve(),
        25,
        "model.engagement.rules[1].points",
    )


@pytest.mark.parametrize("name", ["extends-loop-a.yaml", "extends-loop-b.yaml"])
def test_extends_loop_is_an_error_naming_both_files(name: str) -> None:
    (problem,) = problems_of(BROKEN / name)
    assert problem.path == "extends"
    assert "extends loops" in problem.message
    assert "extends-loop-a.yaml" in problem.message
    assert "extends-loop-b.yaml" in problem.message


@pytest.mark.parametrize(
    ("name", "other"),
    [("extends-loop-a.yaml", "extends-loop-b.yaml"), ("extends-loop-b.yaml", "extends-loop-a.yaml")],
)
def test_extends_loop_names_the_line_of_an_extends_key(name: str, other: str) -> None:
    (problem,) = problems_of(BROKEN / name)
    # either file's `extends:` (line 2 in both) is a fair place to point at
    assert (Path(problem.file).resolve(), problem.line) in {(BROKEN / name, 2), (BROKEN / other, 2)}


def test_duplicate_rule_id_in_a_portal_over_a_base_is_an_error() -> None:
    problems = problems_of(BROKEN / "extends-duplicate-rule-id.yaml")
    assert [(Path(p.file).name, p.line) for p in problems] == [("extends-duplicate-rule-id.yaml", 14)]
    assert "duplicate" in problems[0].message


# --- values that must load as written -------------------------------------------------


@pytest.mark.parametrize("file", [*sorted(VALID.glob("*.yaml")), EXAMPLE], ids=lambda p: p.name)
def test_valid_config_loads(file: Path) -> None:
    loaded = load_portal(file)
    assert loaded.rules.models
    assert len(loaded.rules.version) == 12


def test_yes_no_map_keys_stay_strings() -> None:
    loaded = load_portal(VALID / "yes-no-map.yaml")
    assert loaded.config.model is not None
    has_budget, newsletter = loaded.config.model.fit.rules
    assert has_budget.map == {"yes": 5, "no": -5}
    assert newsletter.equals == "on"
    assert points_of(loaded.rules.models[0].fit.rules[0]) == {"yes": 500, "no": -500}


def _minimal() -> tuple[dict[str, Any], Any]:
    data, lines = load_yaml(VALID / "minimal.yaml")
    return copy.deepcopy(data), lines


def test_map_keys_that_look_like_numbers_are_values(tmp_path: Path) -> None:
    text = (VALID / "minimal.yaml").read_text().replace("{ENERGY: 10, FINANCE: 3}", "{1: 10, 2: 3}")
    (tmp_path / "rating.yaml").write_text(text)
    loaded = load_portal(tmp_path / "rating.yaml")
    assert points_of(loaded.rules.models[0].fit.rules[0]) == {"1": 1000, "2": 300}


# --- token_env ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (TOKEN, "looks like a token pasted"),
        (f"Bearer {TOKEN}", "looks like a token pasted"),
        ("12345678-1234-1234-1234-123456789abc", "looks like a token pasted"),  # a legacy API key
        ("HUBSPOT TOKEN", "must be the name of an environment variable"),
        ("", "must be the name of an environment variable"),
    ],
    ids=["private-app-token", "bearer-header", "legacy-api-key", "space", "empty"],
)
def test_token_env_must_be_a_variable_name(value: str, message: str) -> None:
    data, lines = _minimal()
    data["portal"]["token_env"] = value
    with pytest.raises(ConfigError) as info:
        build_portal(data, Path("portal.yaml"), lines)
    (problem,) = info.value.problems
    assert (problem.file, problem.line, problem.path) == (str(VALID / "minimal.yaml"), 5, "portal.token_env")
    assert message in problem.message
    if value:
        assert value not in str(info.value)


# --- base_url, numbers, nesting ------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("https://api.hubapi.com", False),
        ("http://127.0.0.1:8080", False),
        ("http://127.3.2.1", False),
        ("http://localhost:9000/", False),
        ("http://[::1]:9000", False),
        ("http://api.hubapi.com", True),
        ("http://127.0.0.1.example.com", True),
        ("http://10.0.0.7:8080", True),
        ("http://localhost.example.com", True),
        ("http://[::2]:9000", True),
    ],
)
def test_plain_http_base_url_only_to_a_loopback_host(url: str, refused: bool) -> None:
    data, lines = _minimal()
    data["portal"]["base_url"] = url
    if not refused:
        assert build_portal(data, Path("portal.yaml"), lines).config.portal.base_url == url
        return
    with pytest.raises(ConfigError) as info:
        build_portal(data, Path("portal.yaml"), lines)
    (problem,) = info.value.problems
    assert problem.path == "portal.base_url" and "the token would travel in clear" in problem.message


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("model", "fit", "rules", 0, "map", "ENERGY"), True, "must be a number, not true"),
        (("model", "fit", "rules", 0, "map", "ENERGY"), 1_000_001, "points must be between -1,000,000 and"),
        (("model", "fit", "rules", 1, "bands", 1, "points"), False, "must be a number, not false"),
        (("model", "lifecycle", "hysteresis"), True, "must be a number, not true"),
        (("model", "lifecycle", "stages", 1, "min_score"), 2e6, "points must be between"),
        (("model", "grades", "engagement", 0, "min"), True, "must be a number, not true"),
        (("holdout",), {"percent": True, "salt": "s"}, "must be a number, not true"),
        (("portal", "id"), True, "must be a number, not true"),
    ],
)
def test_every_number_is_a_real_number_in_range(path: tuple[str | int, ...], value: Any, message: str) -> None:
    data, lines = _minimal()
    node: Any = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ConfigError) as info:
        build_portal(data, Path("portal.yaml"), lines)
    assert any(message in p.message for p in info.value.problems), info.value


def test_conditions_nested_within_the_limit_validate_without_recursion_trouble(tmp_path: Path) -> None:
    # 55 levels of `not:` under model.engagement.rules[1].when (the loader stops past 64 levels in all):
    # pydantic and the builder handle it like any condition.
    when = "{property: country, exists: true}"
    for _ in range(55):
        when = "{not: " + when + "}"
    text = (VALID / "minimal.yaml").read_text().replace("points: 3\n", f"points: 3\n        when: {when}\n")
    (tmp_path / "deep.yaml").write_text(text)
    rule = load_portal(tmp_path / "deep.yaml").rules.models[0].engagement.rules[1]
    assert rule.when is not None


# --- leadsync validate -------------------------------------------------------------------


def _leadsync() -> list[str]:
    script = Path(sys.executable).parent / "leadsync"
    return [str(script)] if script.exists() else [sys.executable, "-m", "sync"]


def test_validate_cli_reports_every_broken_file_and_exits_2() -> None:
    broken = sorted(BROKEN.glob("*.yaml"))
    valid = VALID / "minimal.yaml"
    run = subprocess.run(
        [*_leadsync(), "validate", *map(str, broken), str(valid)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=60,
    )
    assert run.returncode == 2, run.stderr
    assert TOKEN not in run.stdout + run.stderr

    ok = [line.split(": ok ")[0] for line in run.stdout.splitlines() if ": ok " in line]
    assert str(valid) in ok
    assert not {str(BROKEN / name) for name in BROKEN_CASES} & set(ok)

    err = run.stderr.splitlines()
    for name, expected in BROKEN_CASES.items():
        for e in expected:
            where = f"{BROKEN / (e.file or name)}:{e.line}: " + (f"{e.path}: " if e.path else "")
            hits = [line for line in err if line.startswith(where) and e.message in line]
            assert len(hits) == 1, f"{name}: no line {where}...{e.message} on stderr"
    assert len(err) == sum(len(e) for e in BROKEN_CASES.values()), "\n".join(err)


def test_validate_cli_accepts_valid_files(capsys: pytest.CaptureFixture[str]) -> None:
    files = [*sorted(VALID.glob("*.yaml")), EXAMPLE]
    assert main(["validate", *map(str, files)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert [line.split(": ok ")[0] for line in out.splitlines()] == [str(f) for f in files]


def test_validate_cli_reports_a_file_that_is_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes((VALID / "minimal.yaml").read_bytes().replace(b"test-portal", b"caf\xe9"))
    valid = VALID / "minimal.yaml"
    assert main(["validate", str(latin1), str(valid)]) == 2
    out, err = capsys.readouterr()
    assert err.startswith(f"{latin1}:")
    assert out.startswith(f"{valid}: ok ")


HOSTILE = [
    "alias-bomb.yaml",
    "merge-key-bomb.yaml",
    "deep-nesting.yaml",
    "deep-conditions.yaml",
    "points-nan.yaml",
    "band-bound-inf.yaml",
    "points-1e308.yaml",
    "points-beyond-a-million.yaml",
    "points-true.yaml",
    "min-score-false.yaml",
    "base-url-plain-http.yaml",
]


@pytest.mark.parametrize("command", ["sync", "plan"])
@pytest.mark.parametrize("name", HOSTILE)
def test_sync_and_plan_refuse_a_hostile_file_with_exit_2_and_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, command: str, name: str
) -> None:
    monkeypatch.setenv("HUBSPOT_TOKEN_TEST", TOKEN)
    db = ["--db", f"sqlite:///{tmp_path / 'state.db'}"] if command == "sync" else []
    started = time.perf_counter()
    code = main([command, "--config", str(BROKEN / name), *db])
    elapsed = time.perf_counter() - started
    out, err = capsys.readouterr()
    (expected,) = BROKEN_CASES[name]
    assert code == 2
    assert err.splitlines() == [
        line for line in err.splitlines() if line.startswith(f"{BROKEN / name}:{expected.line}: {expected.path}: ")
    ]
    assert expected.message in err and "Traceback" not in out + err
    assert elapsed < 5  # a generous guard against a hang; the real figure is a small fraction of a second


def test_rule_without_points_message_is_grammatical() -> None:
    (problem,) = problems_of(BROKEN / "rule-without-points.yaml")
    assert problem.message == "an event rule needs points"


# --- JSON Schema ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
    return loaded


def test_json_schema_matches_committed_copy(schema: dict[str, Any]) -> None:
    assert json_schema() == schema, (
        "config/leadsync.schema.json is out of date; regenerate it with "
        "`.venv/bin/leadsync schema > config/leadsync.schema.json`"
    )


def test_committed_schema_is_a_valid_draft_2020_12_schema(schema: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize(
    "file",
    [EXAMPLE, VALID / "minimal.yaml", VALID / "yes-no-map.yaml", VALID / "extends-portal.yaml"],
    ids=lambda p: p.name,
)
def test_valid_config_validates_against_schema(schema: dict[str, Any], file: Path) -> None:
    data, _ = load_with_extends(file)
    errors = [
        f"{list(e.absolute_path)}: {e.message}" for e in jsonschema.Draft202012Validator(schema).iter_errors(data)
    ]
    assert errors == []


@pytest.mark.parametrize(
    ("name", "path", "message"),
    [
        ("unknown-key.yaml", ["model", "fit", "rules", 0], "'weight' was unexpected"),
        ("wrong-type.yaml", ["model", "engagement", "rules", 0, "points"], "'lots' is not valid"),
        ("missing-token-env.yaml", ["portal"], "'token_env' is a required property"),
    ],
)
def test_structurally_broken_config_is_rejected_by_schema(
    schema: dict[str, Any], name: str, path: list[str | int], message: str
) -> None:
    data, _ = load_yaml(BROKEN / name)
    error = best_match(jsonschema.Draft202012Validator(schema).iter_errors(data))
    assert error is not None
    assert (list(error.absolute_path), message in error.message) == (path, True)


def test_own_stages_defaults_to_written_and_an_unknown_value_names_file_line_and_field(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    assert "own_stages: written" in text
    assert load_portal(EXAMPLE).rules.models[0].lifecycle.own_stages == "written"
    bad = tmp_path / "portal.yaml"
    bad.write_text(text.replace("own_stages: written", "own_stages: mine"))
    line = text[: text.index("own_stages: written")].count("\n") + 1
    (problem,) = problems_of(bad)
    assert (problem.line, problem.path) == (line, "model.lifecycle.own_stages")
    assert "'written' or 'all'" in problem.message
