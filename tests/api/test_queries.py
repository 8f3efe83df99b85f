"""``POST /v1/queries`` and ``GET /v1/budgets`` over HTTP, on both databases."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlmodel import select

from broker.api.queries import QueryRequest
from broker.app import create_app
from broker.audit.models import AuditEntry
from broker.db import session_scope
from broker.runtime import Runtime
from broker.timeutil import FixedClock
from tests.oauth.support import ISSUER, LOOPBACK, bearer
from tests.privacy.city import AIR, AIR_DATA, SERVICE, City
from tests.privacy.clients import token_for

PROBLEM = "application/problem+json"


@pytest.fixture
def clock() -> FixedClock:
    # Client assertions and tokens are checked against real time too: hold the clock at the real now.
    return FixedClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def api(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime=runtime), base_url=ISSUER, client=LOOPBACK) as client:
        yield client


@pytest.fixture
def city(runtime: Runtime, clock: FixedClock) -> City:
    city = City(runtime.engine, runtime.policy, runtime.secrets, clock)
    for person in city.consenting(6):
        city.records(person, AIR_DATA, city.reading(14, district="lyon-1"))
    return city


@pytest.fixture
def token(api: TestClient, runtime: Runtime, clock: FixedClock) -> str:
    return token_for(api, runtime, SERVICE, clock)


def body(**changes: Any) -> dict[str, Any]:
    return {"purpose": AIR, "dataset": AIR_DATA, "statistic": "mean", "measure": "pm25",
            "group_by": ["district"], "epsilon": 0.25, **changes}


def audit_decisions(runtime: Runtime) -> list[str]:
    with session_scope(runtime.engine) as session:
        return [e.decision or "" for e in session.exec(select(AuditEntry).where(AuditEntry.action == "query")
                                                       .order_by(AuditEntry.seq))]


def test_a_mean_by_district(api: TestClient, token: str, city: City, runtime: Runtime) -> None:
    response = api.post("/v1/queries", json=body(), headers=bearer(token))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert set(answer) == {"query_id", "results", "epsilon_charged", "budget_remaining", "audit_index", "cached"}
    assert [cell["group"] for cell in answer["results"]] == [{"district": f"lyon-{i}"} for i in range(1, 10)]
    assert answer["epsilon_charged"] == 0.25 and answer["budget_remaining"] == 2.75
    assert answer["cached"] is False and audit_decisions(runtime) == ["allow"]
    for cell in answer["results"]:
        if not cell["suppressed"]:
            low, high = cell["ci95"]
            assert 0 <= low <= cell["value"] <= high <= 150

    again = api.post("/v1/queries", json=body(), headers=bearer(token)).json()
    assert again["cached"] is True and again["epsilon_charged"] == 0 and again["query_id"] == answer["query_id"]
    assert again["results"] == answer["results"] and again["budget_remaining"] == 2.75


def test_a_denial_is_403_problem_details_with_reasons_and_is_audited(api: TestClient, token: str, city: City,
                                                                     runtime: Runtime) -> None:
    response = api.post("/v1/queries", json=body(statistic="sum", group_by=["respiratory_symptoms"]),
                        headers=bearer(token))
    assert response.status_code == 403 and response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"].endswith("/query-denied")
    assert [r["code"] for r in problem["reasons"]] == ["statistic-not-allowed", "group-by-not-declared"]
    assert all(r["fr"] and r["en"] for r in problem["reasons"])
    assert audit_decisions(runtime) == ["deny"]  # committed although the answer is an error


def test_an_exhausted_budget_is_its_own_problem_type_with_what_remains(api: TestClient, token: str, city: City,
                                                                       clock: FixedClock) -> None:
    for day in range(6):  # 6 × 0.5 = the service's 3.0 for the year
        window = {"from": (clock.now() - timedelta(days=30 + day)).isoformat()}
        assert api.post("/v1/queries", json=body(epsilon=0.5, where=window),
                        headers=bearer(token)).status_code == 200
    response = api.post("/v1/queries", json=body(epsilon=0.1), headers=bearer(token))
    assert response.status_code == 403 and response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"].endswith("/budget-exhausted") and problem["budget_remaining"] == 0.0
    assert [r["code"] for r in problem["reasons"]] == ["budget-exhausted"]


def test_the_tokens_rar_ceiling_is_enforced(api: TestClient, runtime: Runtime, clock: FixedClock,
                                            city: City) -> None:
    details = [{"type": "data-request", "purpose": AIR, "datatypes": [AIR_DATA], "actions": ["query"],
                "epsilon": 0.1}]
    narrow = token_for(api, runtime, SERVICE, clock, authorization_details=json.dumps(details))
    assert api.post("/v1/queries", json=body(epsilon=0.1), headers=bearer(narrow)).status_code == 200
    refused = api.post("/v1/queries", json=body(epsilon=0.2), headers=bearer(narrow))
    assert refused.status_code == 403
    assert [r["code"] for r in refused.json()["reasons"]] == ["epsilon-above-token-ceiling"]


@pytest.mark.parametrize("change", [
    {"epsilon": None}, {"epsilon": 0.1234567}, {"epsilon": -1}, {"epsilon": 11}, {"statistic": "median"},
    {"statistic": "count"}, {"measure": None}, {"group_by": ["district", "district"]},
    {"group_by": ["a1", "b1", "c1"]},
    {"where": {"from": "2026-03-01T00:00:00+00:00", "to": "2026-02-01T00:00:00+00:00"}},
    {"where": {"from": "2026-03-01T00:00:00"}}, {"quantile": 0.5}, {"cohort": "everyone"},
    {"legal_basis": "because"}, {"statistic": "histogram", "measure": "district"}, {"purpose": "Air Quality"},
])
def test_malformed_requests_are_refused_by_the_model(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        QueryRequest.model_validate({k: v for k, v in body(**change).items() if v is not None})


def test_a_malformed_request_is_422_problem_details(api: TestClient, token: str, runtime: Runtime) -> None:
    response = api.post("/v1/queries", json=body(epsilon=0.1234567, measure=None), headers=bearer(token))
    assert response.status_code == 422 and response.headers["content-type"] == PROBLEM
    assert "body.epsilon" in {e["location"] for e in response.json()["errors"]}
    assert audit_decisions(runtime) == []  # nothing to decide on: refused at the edge


def test_a_well_formed_request_becomes_the_domain_spec() -> None:
    request = QueryRequest.model_validate(body(statistic="quantile", quantile=0.9, epsilon=0.123456,
                                               where={"from": "2026-01-01T00:00:00+01:00"}))
    spec = request.spec()
    assert spec.epsilon_micro == 123_456 and spec.quantile == 0.9 and spec.group_by == ("district",)
    assert spec.window.start == datetime(2025, 12, 31, 23, tzinfo=UTC) and spec.window.end is None


def test_no_token_is_401(api: TestClient) -> None:
    assert api.post("/v1/queries", json=body()).status_code == 401
    assert api.get("/v1/budgets").status_code == 401


def test_budgets_list_the_services_accounts(api: TestClient, token: str, city: City) -> None:
    before = api.get("/v1/budgets", headers=bearer(token))
    assert before.status_code == 200
    accounts = {(b["purpose"], b["dataset"]): b for b in before.json()["budgets"]}
    assert set(accounts) == {(AIR, AIR_DATA), ("public-health-study", AIR_DATA), ("public-health-study", "trips")}
    assert accounts[(AIR, AIR_DATA)]["remaining"] == 3.0
    api.post("/v1/queries", json=body(), headers=bearer(token))
    after = {(b["purpose"], b["dataset"]): b for b in api.get("/v1/budgets", headers=bearer(token)).json()["budgets"]}
    air = after[(AIR, AIR_DATA)]
    assert air["service_account"] == {"cap": 3.0, "spent": 0.25, "remaining": 2.75}
    assert air["purpose_account"] == {"cap": 4.0, "spent": 0.25, "remaining": 3.75}


def test_audit_verify_replays_the_budget_of_real_queries(api: TestClient, token: str, city: City,
                                                        runtime: Runtime) -> None:
    from broker.audit.integrator import integrate
    from broker.audit.sources import verify_database

    assert api.post("/v1/queries", json=body(), headers=bearer(token)).status_code == 200
    assert api.post("/v1/queries", json=body(), headers=bearer(token)).json()["cached"] is True
    assert api.post("/v1/queries", json=body(epsilon=0.5), headers=bearer(token)).status_code == 200
    assert api.post("/v1/queries", json=body(epsilon=5), headers=bearer(token)).status_code == 403
    with session_scope(runtime.engine) as session:
        allowed = [json.loads(e.body) for e in session.exec(
            select(AuditEntry).where(AuditEntry.action == "query", AuditEntry.decision == "allow")
            .order_by(AuditEntry.seq))]
    assert [a["details"]["epsilon_charged"] for a in allowed] == [0.25, 0, 0.5]
    assert allowed[-1]["details"]["spent"]["service"] == 0.75
    integrate(runtime.engine, runtime.secrets, runtime.clock)
    report = verify_database(runtime.engine, workers=1)
    assert report.ok, report.finding
    assert any("budget" in line for line in report.checked), report.checked
