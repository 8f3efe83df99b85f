"""The resource guard (RFC 6750 + RFC 9068 §4): every bad token is a 401 ``invalid_token`` with its challenge,
too little scope a 403 ``insufficient_scope``; both as problem details."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey

from broker.db import session_scope
from broker.errors import PROBLEM_BASE
from broker.oauth.registration import ClientRegistry
from broker.runtime import Runtime
from broker.timeutil import FixedClock
from tests.oauth.conftest import Credentials
from tests.oauth.support import ISSUER, access_token, assertion, assertion_form, bearer, claims_of

PROBLEM = "application/problem+json"


def _challenge(response: Any) -> str:
    return response.headers["www-authenticate"]


def _resign(runtime: Runtime, token: str, *, key: Any = None, alg: str = "ES256",
            header: dict[str, Any] | None = None, **claims: Any) -> str:
    """The same token with some header or claims changed, signed again (by the broker's key by default)."""
    original_header, original = claims_of(token)
    signer = key or runtime.keyring().signer
    new_header = {**original_header, "alg": alg, **(header or {})}
    payload = {**original, **claims}
    return jwt.encode({k: v for k, v in new_header.items() if v is not None},
                      {k: v for k, v in payload.items() if v is not None}, signer, algorithms=[alg])


@pytest.fixture
def token(api: TestClient, registered: dict[str, Credentials], service_id: str, clock: FixedClock) -> str:
    return access_token(api, registered[service_id].key, service_id, clock)


def test_a_valid_token_reaches_the_handler(api: TestClient, token: str, service_id: str) -> None:
    response = api.get("/v1/client", headers=bearer(token))
    assert response.status_code == 200
    assert response.json()["service_id"] == service_id


def test_no_token_is_401_with_a_bare_bearer_challenge(api: TestClient) -> None:
    for headers in ({}, {"Authorization": "Basic Zm9vOmJhcg=="}):
        response = api.get("/v1/client", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == PROBLEM
        assert _challenge(response) == 'Bearer realm="consent-broker"'  # RFC 6750 §3.1: no error code


def _assert_invalid_token(response: Any, reason: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == PROBLEM_BASE + "invalid-token"
    challenge = _challenge(response)
    assert challenge.startswith('Bearer realm="consent-broker", error="invalid_token"'), challenge
    assert reason in challenge, (reason, challenge)


def test_an_expired_token_is_invalid(api: TestClient, token: str, clock: FixedClock) -> None:
    clock.advance(seconds=299)
    assert api.get("/v1/client", headers=bearer(token)).status_code == 200
    clock.advance(seconds=1)
    _assert_invalid_token(api.get("/v1/client", headers=bearer(token)), "expired")


def test_a_revoked_token_is_invalid(api: TestClient, token: str, registered: dict[str, Credentials],
                                    service_id: str, clock: FixedClock) -> None:
    form = assertion_form(assertion(registered[service_id].key, service_id, clock, audience=ISSUER), token=token)
    assert api.post("/oauth/revoke", data=form).status_code == 200
    _assert_invalid_token(api.get("/v1/client", headers=bearer(token)), "revoked")


def test_a_disabled_clients_live_token_is_invalid(api: TestClient, token: str, runtime: Runtime,
                                                  service_id: str, clock: FixedClock) -> None:
    with session_scope(runtime.engine) as session:
        ClientRegistry(session, runtime.policy).disable(service_id, now=clock.now())
    _assert_invalid_token(api.get("/v1/client", headers=bearer(token)), "disabled")


@pytest.mark.parametrize(("change", "reason"), [
    ({"header": {"typ": "JWT"}}, "typ"),
    ({"header": {"typ": None}}, "typ"),
    ({"aud": ISSUER}, "aud"),
    ({"aud": "https://elsewhere.example/v1"}, "aud"),
    ({"iss": "https://elsewhere.example"}, "iss"),
    ({"jti": "never-issued"}, "no record"),
    ({"client_id": "someone-else"}, "client_id"),
])
def test_a_token_with_a_wrong_claim_or_typ_is_invalid(api: TestClient, token: str, runtime: Runtime,
                                                      change: dict[str, Any], reason: str) -> None:
    claims = dict(change)  # parametrize shares the dict between the two databases' runs
    forged = _resign(runtime, token, header=claims.pop("header", None), **claims)
    _assert_invalid_token(api.get("/v1/client", headers=bearer(forged)), reason)


def test_a_foreign_signed_token_is_invalid(api: TestClient, token: str, runtime: Runtime) -> None:
    stranger = ECKey.generate_key("P-256", private=True)
    same_kid = _resign(runtime, token, key=stranger)  # claims our kid, signed by someone else
    other_kid = _resign(runtime, token, key=stranger, header={"kid": "not-ours"})
    for forged in (same_kid, other_kid):
        _assert_invalid_token(api.get("/v1/client", headers=bearer(forged)), "signature")


def test_hs256_or_unsigned_tokens_are_invalid(api: TestClient, token: str, runtime: Runtime) -> None:
    public = json.dumps(runtime.keyring().jwks()["keys"][0]).encode()  # anyone can fetch it
    hs256 = _resign(runtime, token, key=OctKey.import_key(public), alg="HS256")
    head, claims = claims_of(token)

    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    unsigned = f"{b64({**head, 'alg': 'none'})}.{b64(claims)}."
    for forged in (hs256, unsigned, "not-a-jwt", token + "x"):
        _assert_invalid_token(api.get("/v1/client", headers=bearer(forged)), "signature")


def test_too_little_scope_is_403_with_the_scope_needed(api: TestClient, registered: dict[str, Credentials],
                                                       service_id: str, provider_id: str, clock: FixedClock) -> None:
    service_token = access_token(api, registered[service_id].key, service_id, clock)
    provider_token = access_token(api, registered[provider_id].key, provider_id, clock)
    assert api.get("/test/any-purpose", headers=bearer(service_token)).status_code == 200
    assert api.get("/test/ingest", headers=bearer(provider_token)).status_code == 200
    for path, token, scope in (("/test/ingest", service_token, "ingest"),
                               ("/test/any-purpose", provider_token, "purpose:*")):
        response = api.get(path, headers=bearer(token))
        assert response.status_code == 403
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["type"] == PROBLEM_BASE + "insufficient-scope"
        challenge = _challenge(response)
        assert 'error="insufficient_scope"' in challenge and f'scope="{scope}"' in challenge


def test_openapi_shows_the_oauth2_scheme_and_each_routes_scopes(api: TestClient) -> None:
    document = api.get("/openapi.json").json()
    scheme = document["components"]["securitySchemes"]["oauth2"]
    assert scheme["flows"]["clientCredentials"]["tokenUrl"] == "/oauth/token"
    assert document["paths"]["/v1/client"]["get"]["security"] == [{"oauth2": []}]
    assert document["paths"]["/test/ingest"]["get"]["security"] == [{"oauth2": ["ingest"]}]


def test_a_token_from_a_worker_whose_clock_runs_a_little_ahead_is_accepted(api: TestClient, token: str,
                                                                          runtime: Runtime) -> None:
    _, claims = claims_of(token)
    ahead = _resign(runtime, token, iat=claims["iat"] + 10)
    assert api.get("/v1/client", headers=bearer(ahead)).status_code == 200
    far_ahead = _resign(runtime, token, iat=claims["iat"] + 120)
    _assert_invalid_token(api.get("/v1/client", headers=bearer(far_ahead)), "iat")
