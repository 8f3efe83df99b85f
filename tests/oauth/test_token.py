"""The token endpoint (RFC 6749 §4.4): standard clients get tokens; every refusal is the right RFC 6749 error."""

from __future__ import annotations

from typing import Any

import httpx
import httpx2
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from fastapi import FastAPI
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from broker.db import session_scope
from broker.identity.passwords import hash_password
from broker.oauth.models import OAuthClient
from broker.oauth.registration import ClientRegistry
from broker.oauth.rfc9068 import ACCESS_TOKEN_LIFETIME
from broker.policy import Policy
from broker.runtime import Runtime
from broker.scopes import INGEST, client_scopes, purpose_scope
from broker.timeutil import FixedClock
from tests.oauth.conftest import BASIC_SERVICE, Credentials
from tests.oauth.support import (
    ISSUER,
    LOOPBACK,
    TOKEN_URL,
    assertion,
    assertion_form,
    claims_of,
    hs256_with_public_key,
    request_token,
)
from tests.support import aio


class ShortLivedPrivateKeyJWT(PrivateKeyJWT):
    """authlib's own private_key_jwt, with assertions valid for one minute.

    authlib's default is one hour, which the broker refuses (at most five minutes): this is the one
    setting a client needs, and how a service configures it with authlib.
    """

    def sign(self, auth: Any, token_endpoint: str) -> str:
        return private_key_jwt_sign(auth.client_secret, client_id=auth.client_id, token_endpoint=token_endpoint,
                                    alg=self.alg, header=self.headers, expires_in=60)


def _authlib_client(app: FastAPI, **kwargs: Any) -> AsyncOAuth2Client:
    # authlib 1.9's httpx integration is built on httpx2, hence its ASGI transport (from loopback).
    return AsyncOAuth2Client(transport=httpx2.ASGITransport(app=app, client=LOOPBACK), **kwargs)


def _error(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/json"), response.text
    assert response.headers["cache-control"] == "no-store"
    return response.json()["error"]


# -- standard clients ------------------------------------------------------------------------------------------

def test_authlib_client_gets_a_token_with_private_key_jwt_and_uses_it(
        app: FastAPI, registered: dict[str, Credentials], service_id: str, oauth_policy: Policy) -> None:
    credentials = registered[service_id]
    purposes = oauth_policy.service(service_id).purposes

    async def scenario() -> tuple[dict[str, Any], httpx2.Response]:
        async with _authlib_client(app, client_id=service_id, client_secret=credentials.key,
                                   token_endpoint_auth_method="private_key_jwt",
                                   scope=purpose_scope(purposes[0])) as oauth:
            oauth.register_client_auth_method(ShortLivedPrivateKeyJWT(TOKEN_URL, alg="ES256"))
            token = await oauth.fetch_token(TOKEN_URL, grant_type="client_credentials")
            return token, await oauth.get(ISSUER + "/v1/client")

    token, response = aio.run(scenario())
    assert token["token_type"] == "Bearer" and token["expires_in"] == ACCESS_TOKEN_LIFETIME
    assert token["scope"] == purpose_scope(purposes[0])
    assert response.status_code == 200, response.text
    assert response.json()["purposes"] == [purposes[0]]
    assert response.json()["client_id"] == service_id


def test_authlib_client_gets_a_token_with_client_secret_basic(app: FastAPI,
                                                              registered: dict[str, Credentials]) -> None:
    credentials = registered[BASIC_SERVICE]

    async def scenario() -> tuple[dict[str, Any], httpx2.Response]:
        async with _authlib_client(app, client_id=BASIC_SERVICE, client_secret=credentials.secret,
                                   token_endpoint_auth_method="client_secret_basic") as oauth:
            token = await oauth.fetch_token(TOKEN_URL, grant_type="client_credentials")
            return token, await oauth.get(ISSUER + "/v1/client")

    token, response = aio.run(scenario())
    assert token["access_token"] and response.status_code == 200
    assert response.json()["client_id"] == BASIC_SERVICE


def test_access_token_follows_rfc9068(api: TestClient, registered: dict[str, Credentials], service_id: str,
                                      clock: FixedClock, runtime: Runtime) -> None:
    response = request_token(api, registered[service_id].key, service_id, clock)
    assert response.status_code == 200
    token = response.json()["access_token"]
    jwks = KeySet.import_key_set(api.get("/.well-known/jwks.json").json())
    verified = jwt.decode(token, jwks, algorithms=["ES256"])
    header, claims = verified.header, verified.claims
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256"
    assert header["kid"] == runtime.keyring().current_kid
    now = int(clock.now().timestamp())
    assert claims["iss"] == ISSUER and claims["aud"] == ISSUER + "/v1"
    assert claims["sub"] == claims["client_id"] == service_id
    assert claims["iat"] == now and claims["exp"] == now + ACCESS_TOKEN_LIFETIME
    assert len(claims["jti"]) >= 22
    # No scope asked for: the policy's default, every active purpose of the service.
    assert set(claims["scope"].split()) == client_scopes(runtime.policy.service(service_id), runtime.policy)
    assert response.headers["cache-control"] == "no-store"


def test_a_provider_gets_the_ingest_role(api: TestClient, registered: dict[str, Credentials], provider_id: str,
                                         clock: FixedClock) -> None:
    response = request_token(api, registered[provider_id].key, provider_id, clock)
    assert response.status_code == 200
    assert claims_of(response.json()["access_token"])[1]["scope"] == INGEST


# -- client authentication ---------------------------------------------------------------------------------------

def test_wrong_secret_is_invalid_client_401_with_basic_challenge(api: TestClient) -> None:
    response = api.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(BASIC_SERVICE, "nope"))
    assert response.status_code == 401
    assert _error(response) == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic ")


@pytest.mark.parametrize("credentials", ["/w==", "Zm9vOv8=", "not base64!", "Zm9v=Zm9v"])
@pytest.mark.parametrize("endpoint", ["/oauth/token", "/oauth/introspect", "/oauth/revoke"])
def test_basic_credentials_that_are_not_base64_utf8_are_invalid_client_not_a_crash(
        api: TestClient, endpoint: str, credentials: str) -> None:
    response = api.post(endpoint, data={"grant_type": "client_credentials", "token": "x"},
                        headers={"Authorization": f"Basic {credentials}"})
    assert response.status_code == 401, response.text
    assert _error(response) == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic ")


def test_unknown_client_is_invalid_client(api: TestClient, clock: FixedClock,
                                          client_keys: dict[str, ECKey], service_id: str) -> None:
    by_basic = api.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=("nobody", "secret"))
    assert by_basic.status_code == 401 and _error(by_basic) == "invalid_client"
    by_assertion = api.post("/oauth/token",
                            data=assertion_form(assertion(client_keys[service_id], "nobody", clock)))
    assert by_assertion.status_code == 400 and _error(by_assertion) == "invalid_client"


def test_no_client_authentication_is_invalid_client(api: TestClient) -> None:
    response = api.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": BASIC_SERVICE})
    assert response.status_code == 401 and _error(response) == "invalid_client"


def test_a_private_key_jwt_service_cannot_use_a_secret(api: TestClient, runtime: Runtime, service_id: str,
                                                       registered: dict[str, Credentials]) -> None:
    # Even with a secret on record (the demo registers both), the policy says private_key_jwt.
    with session_scope(runtime.engine) as session:
        row = session.get(OAuthClient, service_id)
        row.secret_hash = hash_password("known-secret")
        session.add(row)
    response = api.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(service_id, "known-secret"))
    assert response.status_code == 401 and _error(response) == "invalid_client"


def test_a_disabled_client_is_refused(api: TestClient, runtime: Runtime, registered: dict[str, Credentials],
                                      service_id: str, clock: FixedClock) -> None:
    with session_scope(runtime.engine) as session:
        ClientRegistry(session, runtime.policy).disable(service_id, now=clock.now())
    response = request_token(api, registered[service_id].key, service_id, clock)
    assert response.status_code == 400 and _error(response) == "invalid_client"


def test_a_replayed_assertion_is_refused_on_every_worker(api: TestClient, other_api: TestClient, clock: FixedClock,
                                                         registered: dict[str, Credentials], service_id: str) -> None:
    signed = assertion(registered[service_id].key, service_id, clock)
    assert api.post("/oauth/token", data=assertion_form(signed)).status_code == 200
    again = api.post("/oauth/token", data=assertion_form(signed))
    elsewhere = other_api.post("/oauth/token", data=assertion_form(signed))
    for response in (again, elsewhere):
        assert response.status_code == 400 and _error(response) == "invalid_client"
        assert "JWT ID" in response.json()["error_description"]


@pytest.mark.parametrize("lifetime", [301, 3600])
def test_a_long_lived_assertion_is_refused(api: TestClient, clock: FixedClock, registered: dict[str, Credentials],
                                           service_id: str, lifetime: int) -> None:
    signed = assertion(registered[service_id].key, service_id, clock, lifetime=lifetime)
    response = api.post("/oauth/token", data=assertion_form(signed))
    assert response.status_code == 400 and _error(response) == "invalid_client"
    assert "300 seconds" in response.json()["error_description"]


def test_a_long_lived_assertion_without_iat_is_refused(api: TestClient, clock: FixedClock, service_id: str,
                                                       registered: dict[str, Credentials]) -> None:
    signed = assertion(registered[service_id].key, service_id, clock, lifetime=900, iat=False)
    response = api.post("/oauth/token", data=assertion_form(signed))
    assert response.status_code == 400 and _error(response) == "invalid_client"


def test_hs256_assertion_keyed_with_the_public_key_is_refused(api: TestClient, clock: FixedClock, service_id: str,
                                                              registered: dict[str, Credentials]) -> None:
    response = api.post("/oauth/token",
                        data=assertion_form(hs256_with_public_key(registered[service_id].key, service_id, clock)))
    assert response.status_code == 400 and _error(response) == "invalid_client"


@pytest.mark.parametrize("problem", ["expired", "wrong-audience", "foreign-key", "sub-differs"])
def test_bad_assertions_are_invalid_client(api: TestClient, clock: FixedClock, registered: dict[str, Credentials],
                                           service_id: str, provider_id: str, client_keys: dict[str, ECKey],
                                           problem: str) -> None:
    key = registered[service_id].key
    signed = {
        "expired": lambda: assertion(key, service_id, clock, lifetime=-120),
        "wrong-audience": lambda: assertion(key, service_id, clock, audience="https://elsewhere.example/token"),
        "foreign-key": lambda: assertion(client_keys[provider_id], service_id, clock),
        "sub-differs": lambda: assertion(key, service_id, clock, iss=provider_id),
    }[problem]()
    response = api.post("/oauth/token", data=assertion_form(signed))
    assert response.status_code == 400 and _error(response) == "invalid_client"


def test_the_issuer_is_an_accepted_assertion_audience(api: TestClient, clock: FixedClock, service_id: str,
                                                      registered: dict[str, Credentials]) -> None:
    signed = assertion(registered[service_id].key, service_id, clock, audience=ISSUER)
    assert api.post("/oauth/token", data=assertion_form(signed)).status_code == 200


def test_two_authentication_methods_at_once_are_refused(api: TestClient, clock: FixedClock, service_id: str,
                                                        registered: dict[str, Credentials]) -> None:
    form = assertion_form(assertion(registered[service_id].key, service_id, clock))
    response = api.post("/oauth/token", data=form, auth=(BASIC_SERVICE, registered[BASIC_SERVICE].secret))
    assert response.status_code == 400 and _error(response) == "invalid_request"


# -- scopes and the request itself ---------------------------------------------------------------------------------

def test_unknown_scope_is_invalid_scope(api: TestClient, clock: FixedClock, service_id: str,
                                        registered: dict[str, Credentials]) -> None:
    response = request_token(api, registered[service_id].key, service_id, clock, scope="purpose:nothing-like-it")
    assert response.status_code == 400 and _error(response) == "invalid_scope"
    assert "purpose:nothing-like-it" in response.json()["error_description"]


def test_a_scope_the_policy_does_not_grant_is_invalid_scope_not_narrowed(
        api: TestClient, clock: FixedClock, service_id: str, registered: dict[str, Credentials],
        oauth_policy: Policy) -> None:
    mine = oauth_policy.service(service_id).purposes[0]
    others = next(p.id for p in oauth_policy.purposes if p.id not in oauth_policy.service(service_id).purposes)
    for scope in (f"{purpose_scope(mine)} {purpose_scope(others)}", INGEST):
        response = request_token(api, registered[service_id].key, service_id, clock, scope=scope)
        assert response.status_code == 400 and _error(response) == "invalid_scope", scope


def test_resource_other_than_the_api_is_invalid_target(api: TestClient, clock: FixedClock, service_id: str,
                                                       registered: dict[str, Credentials]) -> None:
    key = registered[service_id].key
    response = request_token(api, key, service_id, clock, resource="https://elsewhere.example/")
    assert response.status_code == 400 and _error(response) == "invalid_target"
    assert request_token(api, key, service_id, clock, resource=ISSUER + "/v1").status_code == 200


def test_unsupported_grant_type(api: TestClient, clock: FixedClock, service_id: str,
                                registered: dict[str, Credentials]) -> None:
    form = assertion_form(assertion(registered[service_id].key, service_id, clock), grant_type="password")
    response = api.post("/oauth/token", data=form)
    assert response.status_code == 400 and _error(response) == "unsupported_grant_type"


def test_a_json_body_or_a_repeated_parameter_is_invalid_request(api: TestClient) -> None:
    as_json = api.post("/oauth/token", json={"grant_type": "client_credentials"})
    assert as_json.status_code == 400 and _error(as_json) == "invalid_request"
    repeated = api.post("/oauth/token", content="grant_type=client_credentials&scope=a&scope=b",
                        headers={"content-type": "application/x-www-form-urlencoded"})
    assert repeated.status_code == 400 and _error(repeated) == "invalid_request"


def test_a_huge_body_is_refused_before_it_is_buffered(api: TestClient) -> None:
    response = api.post("/oauth/token", content="scope=" + "x" * 100_000,
                        headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400 and _error(response) == "invalid_request"
