"""Fault injection: each kind, its effect on writes, determinism by seed, and specs."""

from __future__ import annotations

import time

import pytest
import requests

from sync.sandbox import Sandbox
from sync.sandbox.faults import FaultInjector, FaultSpec
from tests.sandbox.conftest import MakeSandbox
from tests.sandbox.support import Api

CONTACTS = "/crm/v3/objects/contacts"


def faulty(make_sandbox: MakeSandbox, spec: str, seed: int = 0, hold: float = 0.3) -> Api:
    return Api(make_sandbox(faults=spec, fault_seed=seed, fault_timeout_seconds=hold))


def score_write(cid: str = "101", score: str = "9") -> list[dict[str, object]]:
    return [{"id": cid, "properties": {"ls_score": score}}]


@pytest.mark.parametrize(
    ("spec", "status", "field", "value"),
    [
        ("429=1", 429, "policyName", "TEN_SECONDLY_ROLLING"),
        ("500=1", 500, "category", "INTERNAL_ERROR"),
        ("503=1", 503, "category", "SERVICE_UNAVAILABLE"),
    ],
)
def test_error_faults_answer_an_error_body_and_apply_nothing(
    make_sandbox: MakeSandbox, spec: str, status: int, field: str, value: str
) -> None:
    api = faulty(make_sandbox, spec)
    response = api.update(score_write())
    assert response.status_code == status
    assert response.json()["status"] == "error"
    assert response.json()[field] == value
    assert api.sandbox.portal.write_log() == []


def test_an_injected_429_on_search_is_the_secondly_one(make_sandbox: MakeSandbox) -> None:
    response = faulty(make_sandbox, "429=1").search(None)
    assert response.json()["policyName"] == "SECONDLY"


def test_an_injected_429_is_not_counted_against_the_budget(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(faults="429=1", rate_limit="per10s=5")
    api = Api(sandbox)
    assert api.get(CONTACTS).headers["X-HubSpot-RateLimit-Remaining"] == "5"
    api.admin("faults", {"spec": "off"})
    assert api.get(CONTACTS).headers["X-HubSpot-RateLimit-Remaining"] == "4"


def test_a_timeout_applies_the_write_then_closes_without_an_answer(make_sandbox: MakeSandbox) -> None:
    api = faulty(make_sandbox, "timeout=1", hold=0.3)
    started = time.perf_counter()
    with pytest.raises(requests.ConnectionError):
        api.update(score_write())
    assert time.perf_counter() - started >= 0.3
    assert api.props("101")["ls_score"] == "9"


def test_a_client_read_timeout_fires_before_the_held_answer(make_sandbox: MakeSandbox) -> None:
    api = faulty(make_sandbox, "timeout=1", hold=5)
    with pytest.raises(requests.ReadTimeout):
        api.session.get(api.url + CONTACTS, timeout=(2, 0.2))


def test_a_reset_gives_no_answer_and_a_seeded_coin_decides_whether_a_write_applied(make_sandbox: MakeSandbox) -> None:
    outcomes = []
    for seed in range(8):
        api = faulty(make_sandbox, "reset=1", seed=seed)
        with pytest.raises(requests.ConnectionError):
            api.update(score_write())
        outcomes.append(bool(api.sandbox.portal.write_log()))
        api.close()
    assert True in outcomes and False in outcomes  # both happen; which one is fixed by the seed
    replay = faulty(make_sandbox, "reset=1", seed=3)
    with pytest.raises(requests.ConnectionError):
        replay.update(score_write())
    assert bool(replay.sandbox.portal.write_log()) == outcomes[3]


def test_a_reset_read_is_never_applied(make_sandbox: MakeSandbox) -> None:
    api = faulty(make_sandbox, "reset=1")
    with pytest.raises(requests.ConnectionError):
        api.get(CONTACTS)
    assert api.admin("stats").json()["faults"] == {"reset": 1}


def test_a_partial_fault_fails_a_retriable_subset_and_applies_the_rest(make_sandbox: MakeSandbox) -> None:
    api = faulty(make_sandbox, "partial=1", seed=4)
    inputs = [{"id": cid, "properties": {"ls_score": "7"}} for cid in ("101", "102", "103", "104", "105", "107")]
    response = api.update(inputs)
    assert response.status_code == 207
    body = response.json()
    failed = {cid for e in body["errors"] for cid in e["context"]["ids"]}
    assert failed
    assert {e["category"] for e in body["errors"]} <= {"INTERNAL_ERROR", "RATE_LIMITS"}
    applied = {r["id"] for r in body["results"]}
    assert applied | failed == {"101", "102", "103", "104", "105", "107"}
    assert not applied & failed
    assert {cid for cid in applied | failed if api.props(cid).get("ls_score") == "7"} == applied


def test_a_partial_fault_only_hits_batch_updates(make_sandbox: MakeSandbox) -> None:
    api = faulty(make_sandbox, "partial=1")
    assert api.get(CONTACTS).status_code == 200
    assert api.post(CONTACTS + "/batch/read", {"inputs": [{"id": "101"}]}).status_code == 200


def test_faults_never_hit_admin_endpoints(make_sandbox: MakeSandbox) -> None:
    api = faulty(make_sandbox, "500=1")
    assert all(api.admin(path).status_code == 200 for path in ("stats", "snapshot", "write_log"))


def test_the_same_seed_draws_the_same_faults(make_sandbox: MakeSandbox) -> None:
    def statuses(sandbox: Sandbox) -> list[int]:
        api = Api(sandbox)
        return [api.get(CONTACTS).status_code for _ in range(30)]

    spec = "429=0.2,500=0.2,503=0.2"
    first = statuses(make_sandbox(faults=spec, fault_seed=11))
    assert first == statuses(make_sandbox(faults=spec, fault_seed=11))
    assert first != statuses(make_sandbox(faults=spec, fault_seed=12))
    assert {200, 429, 500, 503} == set(first)


def test_faults_can_change_at_run_time(make_sandbox: MakeSandbox) -> None:
    api = faulty(make_sandbox, "500=1")
    assert api.get(CONTACTS).status_code == 500
    assert api.admin("faults", {"spec": "off"}).status_code == 200
    assert api.get(CONTACTS).status_code == 200
    assert api.admin("faults", {"spec": "500=2"}).status_code == 400


@pytest.mark.parametrize(
    ("text", "rates"),
    [
        ("429=0.05,500=0.02,503=0.02,timeout=0.01,reset=0.01,partial=0.05",
         {"429": 0.05, "500": 0.02, "503": 0.02, "timeout": 0.01, "reset": 0.01, "partial": 0.05}),
        ("off", {}),
        ("", {}),
        ("TIMEOUT=0.5", {"timeout": 0.5}),
    ],
)  # fmt: skip
def test_fault_specs_parse(text: str, rates: dict[str, float]) -> None:
    assert FaultSpec.parse(text).rates == rates


@pytest.mark.parametrize("text", ["404=0.1", "500", "500=abc", "500=1.5", "500=0.6,503=0.6"])
def test_bad_fault_specs_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="fault"):
        FaultSpec.parse(text)


def test_draws_follow_the_probabilities() -> None:
    injector = FaultInjector(FaultSpec.parse("500=0.1,partial=0.2"), seed=1, timeout_seconds=1)
    plain = [injector.draw(batch_update=False) for _ in range(5000)]
    assert plain.count("partial") == 0
    assert 400 < plain.count("500") < 600
    writes = [injector.draw(batch_update=True) for _ in range(5000)]
    assert 850 < writes.count("partial") < 1150
