"""RFC 7662 introspection and RFC 7009 revocation, across two app instances (two workers) on one database."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from broker.policy import Policy
from broker.timeutil import FixedClock
from tests.oauth.conftest import BASIC_SERVICE, Credentials
from tests.oauth.support import ISSUER, access_token, assertion, assertion_form, bearer, claims_of


def _as(credentials: Credentials, clock: FixedClock, endpoint: str, **form: str) -> dict[str, Any]:
    """Keyword arguments for api.post: the client authenticates with its own method."""
    if credentials.key is not None:
        signed = assertion(credentials.key, credentials.client_id, clock, audience=ISSUER + endpoint)
        return {"data": assertion_form(signed, **form)}
    return {"data": form, "auth": (credentials.client_id, credentials.secret)}


def _introspect(api: TestClient, credentials: Credentials, clock: FixedClock, token: str) -> dict[str, Any]:
    response = api.post("/oauth/introspect", **_as(credentials, clock, "/oauth/introspect", token=token))
    assert response.status_code == 200, response.text
    return response.json()


def _revoke(api: TestClient, credentials: Credentials, clock: FixedClock, token: str, **form: str) -> Any:
    return api.post("/oauth/revoke", **_as(credentials, clock, "/oauth/revoke", token=token, **form))


def test_introspection_and_revocation_round_trip_across_two_workers(
        api: TestClient, other_api: TestClient, registered: dict[str, Credentials], service_id: str,
        clock: FixedClock) -> None:
    me = registered[service_id]
    token = access_token(api, me.key, service_id, clock)
    _, claims = claims_of(token)

    seen = _introspect(other_api, me, clock, token)
    assert seen["active"] is True and seen["token_type"] == "Bearer"
    for name in ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti"):
        assert seen[name] == claims[name], name

    assert other_api.get("/v1/client", headers=bearer(token)).status_code == 200
    revoked = _revoke(other_api, me, clock, token, token_type_hint="access_token")
    assert revoked.status_code == 200 and revoked.json() == {}

    # The first worker never saw the revocation happen; the database tells it.
    assert api.get("/v1/client", headers=bearer(token)).status_code == 401
    assert _introspect(api, me, clock, token) == {"active": False}
    assert _revoke(api, me, clock, token).status_code == 200  # idempotent


def test_a_client_only_sees_and_revokes_its_own_tokens(api: TestClient, registered: dict[str, Credentials],
                                                       service_id: str, clock: FixedClock) -> None:
    token = access_token(api, registered[service_id].key, service_id, clock)
    stranger = registered[BASIC_SERVICE]
    assert _introspect(api, stranger, clock, token) == {"active": False}
    refused = _revoke(api, stranger, clock, token)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert api.get("/v1/client", headers=bearer(token)).status_code == 200


def test_expired_or_foreign_tokens_are_inactive_and_revoking_them_is_a_no_op(
        api: TestClient, registered: dict[str, Credentials], service_id: str, clock: FixedClock) -> None:
    me = registered[service_id]
    token = access_token(api, me.key, service_id, clock)
    for garbage in ("not-a-token", token[:-4] + "AAAA"):
        assert _introspect(api, me, clock, garbage) == {"active": False}
        assert _revoke(api, me, clock, garbage).status_code == 200
    clock.advance(minutes=5)
    assert _introspect(api, me, clock, token) == {"active": False}


def test_introspection_authenticates_the_client(api: TestClient, registered: dict[str, Credentials],
                                                service_id: str, clock: FixedClock) -> None:
    token = access_token(api, registered[service_id].key, service_id, clock)
    anonymous = api.post("/oauth/introspect", data={"token": token})
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_client"
    wrong = api.post("/oauth/revoke", data={"token": token}, auth=(BASIC_SERVICE, "wrong"))
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    missing = api.post("/oauth/introspect", **_as(registered[service_id], clock, "/oauth/introspect"))
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"


def test_introspection_shows_authorization_details(api: TestClient, registered: dict[str, Credentials],
                                                   service_id: str, clock: FixedClock, oauth_policy: Policy) -> None:
    policy = oauth_policy
    purpose = policy.purpose(policy.service(service_id).purposes[0])
    details = [{"type": "data-request", "purpose": purpose.id, "datatypes": purpose.dataset_ids[:1],
                "actions": ["query"], "epsilon": purpose.budget.per_query_epsilon}]
    me = registered[service_id]
    token = access_token(api, me.key, service_id, clock, authorization_details=json.dumps(details))
    assert _introspect(api, me, clock, token)["authorization_details"] == details
