"""`leadsync validate --live` on company properties: what contact rules read as `company.<property>`, what the
accounts section's rules read, and the account output properties, through the CLI against a sandbox portal with
companies."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sync.sandbox import Sandbox
from sync.sandbox.generator import generate_portal
from sync.sandbox.loading import COMPANIES
from sync.sandbox.properties import PropertyDef, PropertyGroup
from tests.factories import sandbox_config, validate_live

TOKEN_ENV = "LEADSYNC_LIVE_ACCOUNTS_TOKEN"
Config = dict[str, Any]

ACCOUNTS: Config = {
    "fit": {
        "max": 100,
        "rules": [
            {"id": "size", "property": "numberofemployees", "bands": [{"gte": 1000, "points": 30}]},
            {"id": "industry", "property": "industry", "map": {"ENERGY": 20, "FINANCE": 10}},
        ],
    },
    "engagement": {
        "rollup": "sum",
        "rules": [
            {"id": "exec", "contacts": {"where": {"property": "jobtitle", "contains": ["ceo"]}}, "points": 10},
            {"id": "group", "contacts": {"where": {"property": "ls_engagement", "gte": 15}}, "points": 5},
        ],
    },
    "grades": {"fit": [{"grade": "A", "min": 40}, {"grade": "B"}], "engagement": [{"grade": "1"}]},
}


@pytest.fixture
def sb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    with Sandbox(generate_portal(60, 9, companies=12), rate_limit="off") as sandbox:
        monkeypatch.setenv(TOKEN_ENV, sandbox.token)
        yield sandbox


def with_accounts(config: Config) -> None:
    config["accounts"] = yaml.safe_load(yaml.safe_dump(ACCOUNTS))  # a deep copy a case may change


def company_fit_rule(config: Config, rule: dict[str, Any]) -> None:
    """A contact rule reading the contact's primary company."""
    config["model"]["fit"]["rules"].append({"id": "probe", **rule})


def account_rule(config: Config, part: str, rule: dict[str, Any]) -> None:
    with_accounts(config)
    config["accounts"][part]["rules"].append({"id": "probe", **rule})


def run(
    sb: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str], change: Callable[[Config], None]
) -> tuple[int, list[str]]:
    return validate_live(sb.url, TOKEN_ENV, tmp_path, change)


def test_an_accounts_section_and_company_reads_the_portal_has_give_no_finding(
    sb: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def change(config: Config) -> None:
        with_accounts(config)
        company_fit_rule(config, {"property": "company.numberofemployees", "gte": 500, "points": 5})

    assert run(sb, tmp_path, capsys, change) == (0, [])


CASES: list[tuple[str, Callable[[Config], None], int, str]] = [
    (
        "a contact rule reading a company property the portal lacks",
        lambda c: company_fit_rule(c, {"property": "company.budget_band", "equals": "high", "points": 5}),
        2,
        "error: model.fit.rules[12]: company property budget_band does not exist in the portal",
    ),
    (
        "a contact rule: bands on a company text property",
        lambda c: company_fit_rule(c, {"property": "company.name", "bands": [{"gt": 3, "points": 1}]}),
        0,
        "warning: model.fit.rules[12]: bands can never match: name is a string property in the portal",
    ),
    (  # `in` values are compared folded, and named so
        "a contact rule: a value that is not an option of the company's enumeration",
        lambda c: company_fit_rule(c, {"property": "company.industry", "in": ["ENERGY", "MINING"], "points": 1}),
        0,
        "warning: model.fit.rules[12]: 'mining' is not an option of industry; its options are: ENERGY, OIL_GAS",
    ),
    (
        "an account fit rule on a company property the portal lacks",
        lambda c: account_rule(c, "fit", {"property": "tech_stack", "contains": ["sap"], "points": 5}),
        2,
        "error: accounts.fit.rules[2]: company property tech_stack does not exist in the portal",
    ),
    (
        "an account fit rule: gt on a company enumeration",
        lambda c: account_rule(c, "fit", {"property": "industry", "gt": 3, "points": 5}),
        0,
        "warning: accounts.fit.rules[2]: gt can never match: industry is a enumeration property in the portal",
    ),
    (
        "an account map rule whose values are not the company property's options",
        lambda c: account_rule(c, "fit", {"property": "industry", "map": {"MINING": 5}}),
        0,
        "warning: accounts.fit.rules[2].map: 'MINING' is not an option of industry; its options are: ENERGY",
    ),
    (
        "an account rule's when on a company property the portal lacks",
        lambda c: account_rule(
            c,
            "engagement",
            {
                "when": {"property": "is_partner", "exists": True},
                "contacts": {"where": {"property": "jobtitle", "exists": True}},
                "points": 5,
            },
        ),
        2,
        "error: accounts.engagement.rules[2].when: company property is_partner does not exist in the portal",
    ),
    (
        "a contacts rule reading a contact property the portal lacks",
        lambda c: account_rule(
            c, "engagement", {"contacts": {"where": {"property": "buying_role", "equals": "champion"}}, "points": 5}
        ),
        2,
        "error: accounts.engagement.rules[2].contacts.where: property buying_role does not exist in the portal",
    ),
]


@pytest.mark.parametrize(("change", "code", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_finding_on_company_properties(
    sb: Sandbox,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: Callable[[Config], None],
    code: int,
    expected: str,
) -> None:
    got_code, lines = run(sb, tmp_path, capsys, change)
    assert got_code == code
    assert len(lines) == 1, lines
    assert lines[0].startswith(expected)


def define_company_property(sb: Sandbox, name: str, group: str) -> None:
    sb.portal.define_group(PropertyGroup(group, group), COMPANIES)
    sb.portal.define_property(PropertyDef(name, name, "number", "number", group), COMPANIES)


def test_an_account_output_outside_leadsyncs_group_is_an_error(
    sb: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    define_company_property(sb, "ls_account_score", "companyinformation")
    code, lines = run(sb, tmp_path, capsys, with_accounts)
    assert code == 2
    assert lines == [
        "error: accounts.properties.score: company property ls_account_score exists in the portal in group "
        "'companyinformation', outside leadsync's group 'lead_scoring_sync': leadsync does not write it; name "
        "another property"
    ]


def test_an_account_output_in_leadsyncs_group_is_leadsyncs_own(
    sb: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    define_company_property(sb, "ls_account_score", "lead_scoring_sync")
    assert run(sb, tmp_path, capsys, with_accounts) == (0, [])


def company_property_reads(sb: Sandbox) -> int:
    requests: dict[str, dict[str, int]] = sb.stats.to_json()["requests"]
    return sum(sum(by_status.values()) for route, by_status in requests.items() if "properties/companies" in route)


def test_company_properties_are_read_only_when_the_file_reads_a_company(
    sb: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(sb, tmp_path, capsys, lambda c: None) == (0, [])
    assert company_property_reads(sb) == 0
    assert run(sb, tmp_path, capsys, with_accounts) == (0, [])
    assert company_property_reads(sb) == 1


def test_the_service_live_check_covers_the_accounts_section(sb: Sandbox, tmp_path: Path) -> None:
    """The service runs the same check through `sync.app.check_live`: an account rule reading a company property
    the portal lacks is an error there too."""
    from sync.app import check_live, open_portal
    from sync.store.state import SqlStateStore

    config = sandbox_config(sb.url, TOKEN_ENV)
    account_rule(config, "fit", {"property": "tech_stack", "contains": ["sap"], "points": 5})
    file = tmp_path / "live.yaml"
    file.write_text(yaml.safe_dump(config, sort_keys=False))
    store = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        findings = check_live(open_portal(file, store))
    finally:
        store.close()
    assert [(f.level, f.field, f.message) for f in findings if f.level == "error"] == [
        ("error", "accounts.fit.rules[2]", "company property tech_stack does not exist in the portal")
    ]


def test_an_accounts_section_on_a_portal_without_companies_is_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with Sandbox(generate_portal(40, 9), rate_limit="off") as bare:
        monkeypatch.setenv(TOKEN_ENV, bare.token)
        assert run(bare, tmp_path, capsys, with_accounts) == (
            0,
            [
                "warning: accounts: the portal has no companies: the accounts section scores nothing until HubSpot "
                "holds company records"
            ],
        )
