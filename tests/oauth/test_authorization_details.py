"""RFC 9396 ``authorization_details`` of type data-request: checked against the policy, carried, enforced."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from broker.oauth import rfc9396
from broker.policy import Policy, Purpose, Service
from broker.scopes import purpose_scope
from broker.timeutil import FixedClock
from tests.oauth.conftest import Credentials
from tests.oauth.support import bearer, claims_of, request_token


def _purpose_with_dataset(policy: Policy, service: Service) -> tuple[Purpose, str]:
    purpose = next(p for p in (policy.purpose(i) for i in service.purposes) if p and p.status == "active")
    return purpose, purpose.dataset_ids[0]


def _detail(purpose: str, datasets: list[str], epsilon: float, **extra: Any) -> dict[str, Any]:
    return {"type": "data-request", "purpose": purpose, "datatypes": datasets, "actions": ["query"],
            "epsilon": epsilon, **extra}


def _ask(api: TestClient, credentials: Credentials, clock: FixedClock, details: Any, **form: str) -> Any:
    text = details if isinstance(details, str) else json.dumps(details)
    return request_token(api, credentials.key, credentials.client_id, clock, authorization_details=text, **form)


def test_details_within_policy_are_granted_carried_and_returned(
        api: TestClient, registered: dict[str, Credentials], service_id: str, oauth_policy: Policy,
        clock: FixedClock) -> None:
    purpose, dataset = _purpose_with_dataset(oauth_policy, oauth_policy.service(service_id))
    epsilon = purpose.budget.per_query_epsilon / 2
    response = _ask(api, registered[service_id], clock, [_detail(purpose.id, [dataset], epsilon)])
    assert response.status_code == 200, response.text
    body = response.json()
    granted = [_detail(purpose.id, [dataset], epsilon)]
    assert body["authorization_details"] == granted  # RFC 9396 §7
    _, claims = claims_of(body["access_token"])
    assert claims["authorization_details"] == granted  # §9.1
    # Without a scope parameter, the token holds the purposes the details name, and nothing more.
    assert claims["scope"] == purpose_scope(purpose.id)
    me = api.get("/v1/client", headers=bearer(body["access_token"])).json()
    assert me["authorization_details"] == granted and me["purposes"] == [purpose.id]


@pytest.mark.parametrize("problem", [
    "purpose-not-held", "dataset-not-in-purpose", "epsilon-over-ceiling", "unknown-type", "unknown-field",
    "unknown-action", "negative-epsilon", "not-json", "empty", "not-an-array",
])
def test_details_beyond_policy_or_malformed_are_refused(
        api: TestClient, registered: dict[str, Credentials], service_id: str, oauth_policy: Policy,
        clock: FixedClock, problem: str) -> None:
    service = oauth_policy.service(service_id)
    purpose, dataset = _purpose_with_dataset(oauth_policy, service)
    foreign = next(p for p in oauth_policy.purposes if p.id not in service.purposes)
    unused = next(d.id for d in oauth_policy.datasets if d.id not in purpose.dataset_ids)
    ok = _detail(purpose.id, [dataset], purpose.budget.per_query_epsilon)
    details: Any = {
        "purpose-not-held": [_detail(foreign.id, foreign.dataset_ids[:1], 0.01)],
        "dataset-not-in-purpose": [_detail(purpose.id, [unused], 0.01)],
        "epsilon-over-ceiling": [{**ok, "epsilon": purpose.budget.per_query_epsilon * 1.01}],
        "unknown-type": [{**ok, "type": "payment_initiation"}],
        "unknown-field": [{**ok, "locations": ["https://elsewhere.example"]}],
        "unknown-action": [{**ok, "actions": ["export"]}],
        "negative-epsilon": [{**ok, "epsilon": -1}],
        "not-json": "[{type: data-request}",
        "empty": [],
        "not-an-array": ok,
    }[problem]
    response = _ask(api, registered[service_id], clock, details)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_authorization_details"


def test_a_provider_cannot_ask_for_data(api: TestClient, registered: dict[str, Credentials], provider_id: str,
                                        oauth_policy: Policy, clock: FixedClock) -> None:
    purpose = oauth_policy.purposes[0]
    response = _ask(api, registered[provider_id], clock, [_detail(purpose.id, purpose.dataset_ids[:1], 0.01)])
    assert response.status_code == 400 and response.json()["error"] == "invalid_authorization_details"


def test_epsilon_ceiling_is_read_from_the_token(api: TestClient, registered: dict[str, Credentials],
                                                service_id: str, oauth_policy: Policy, clock: FixedClock) -> None:
    service = oauth_policy.service(service_id)
    restricted, other = (oauth_policy.purpose(p) for p in service.purposes[:2])
    dataset = restricted.dataset_ids[0]
    # Details restrict one purpose; the other comes by scope alone, under the policy's ceiling.
    response = _ask(api, registered[service_id], clock, [_detail(restricted.id, [dataset], 0.05)],
                    scope=purpose_scope(other.id))
    token = response.json()["access_token"]

    def ceiling(purpose: str, dataset: str) -> float | None:
        answer = api.get(f"/test/ceiling/{purpose}/{dataset}", headers=bearer(token))
        assert answer.status_code == 200, answer.text
        return answer.json()["ceiling"]

    assert ceiling(restricted.id, dataset) == 0.05
    assert ceiling(other.id, other.dataset_ids[0]) == other.budget.per_query_epsilon
    for unlisted in restricted.dataset_ids[1:]:
        assert ceiling(restricted.id, unlisted) is None  # the details name only `dataset`
    foreign = next(p for p in oauth_policy.purposes if p.id not in service.purposes)
    assert ceiling(foreign.id, foreign.dataset_ids[0]) is None


def test_epsilon_ceiling_rules(policy: Policy) -> None:
    oauth_policy = policy
    purpose = next(p for p in oauth_policy.purposes if len(p.dataset_ids) >= 1)
    dataset = purpose.dataset_ids[0]
    scopes = [purpose_scope(purpose.id)]
    cap = purpose.budget.per_query_epsilon

    def ceiling(details: list[dict[str, Any]], scopes: list[str] = scopes, dataset: str = dataset) -> float | None:
        return rfc9396.epsilon_ceiling(scopes, details, oauth_policy, purpose.id, dataset)

    assert ceiling([]) == cap
    assert ceiling([], scopes=[]) is None
    assert ceiling([], dataset="not-a-dataset") is None
    assert ceiling([_detail(purpose.id, [dataset], cap / 4), _detail(purpose.id, [dataset], cap / 2)]) == cap / 2
    assert ceiling([{**_detail(purpose.id, [dataset], cap / 4), "actions": ["read"]}]) is None
    # A detail never lifts the policy: were the policy lowered after issue, the policy wins.
    assert ceiling([_detail(purpose.id, [dataset], cap * 10)]) == cap
