"""Refusals reach the log by pseudonymous actor, each in its own transaction, holding no personal data or secret:
failed OIDC logins, throttled logins, logouts, the bearer-token guard's refusals, staff and services on
citizens' endpoints, failed client authentication. Refusals that name no one (no token, a string that is not
our token, a callback that matches no login, an unknown client id) leave no entry."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from joserfc.jwk import ECKey
from sqlalchemy import Engine

from broker.audit import actions
from broker.identity.login import LoginConfig, LoginFailed, PasswordLogin
from broker.identity.ratelimit import Limits, TooManyLoginAttempts
from broker.identity.sessions import Timeouts
from broker.runtime import Runtime
from broker.timeutil import FixedClock
from tests.audit.conftest import entries_of
from tests.audit.test_actions import pseudonym
from tests.oauth.support import ISSUER, access_token, assertion, assertion_form, bearer, claims_of
from tests.support.oidc_provider import OidcTestProvider
from tests.support.people import Person, csrf_headers, logged_in

ADDRESSES = ("127.0.0.1", "testclient", "50123")


def clean(entry: dict[str, Any], *secrets: str) -> None:
    """No email, address, password or token in the entry (the log keeps everything for good)."""
    text = str(entry)
    for value in (*ADDRESSES, "@", *secrets):
        assert value not in text, (value, text)


def only(engine: Engine, action: str) -> dict[str, Any]:
    found = entries_of(engine, action=action)
    assert len(found) == 1, found
    return found[0]


# -- OIDC --------------------------------------------------------------------------------------------------

def _through_provider(client: TestClient) -> httpx.Response:
    start = client.get("/login/oidc", follow_redirects=False)
    assert start.status_code == 302, start.text
    authorize = httpx.get(start.headers["location"], follow_redirects=False)
    back = httpx.URL(authorize.headers["location"])
    return client.get(f"{back.path}?{back.query.decode()}", follow_redirects=False)


def test_a_failed_oidc_login_is_logged_without_what_the_provider_said(
        oidc_client: TestClient, oidc_provider: OidcTestProvider, engine: Engine) -> None:
    oidc_provider.user.email_verified = False
    assert _through_provider(oidc_client).status_code == 400
    failed = only(engine, actions.LOGIN_FAILED)
    assert failed["actor"] == "anonymous"
    assert failed["details"] == {"method": "oidc", "reason": "unverified-email"}
    clean(failed, oidc_provider.user.email, oidc_provider.user.sub, "Camille")

    oidc_provider.reset()
    oidc_provider.redirect_uris = ["http://127.0.0.1:8000/login/oidc/callback"]
    oidc_provider.nonce_override = "another login's nonce"
    assert _through_provider(oidc_client).status_code == 400
    assert entries_of(engine, action=actions.LOGIN_FAILED)[-1]["details"]["reason"] == "unverified-answer"


def test_an_oidc_login_to_a_staff_account_is_logged_by_that_account(
        oidc_client: TestClient, oidc_provider: OidcTestProvider, engine: Engine, auditor: Person) -> None:
    oidc_provider.user.email = auditor.email
    assert _through_provider(oidc_client).status_code == 400
    failed = only(engine, actions.LOGIN_FAILED)
    assert failed["actor"] == f"staff:{auditor.account_id}"
    assert failed["details"] == {"method": "oidc", "reason": "staff-account", "role": "auditor"}
    clean(failed, auditor.email)


def test_a_callback_that_matches_no_login_leaves_no_entry(oidc_client: TestClient, engine: Engine) -> None:
    refused = oidc_client.get("/login/oidc/callback?state=made-up&code=whatever", follow_redirects=False)
    assert refused.status_code == 400
    assert entries_of(engine, action=actions.LOGIN_FAILED) == []


# -- throttled logins, logout ------------------------------------------------------------------------------

def _password_login(runtime: Runtime) -> PasswordLogin:
    config = LoginConfig(local_accounts=True,
                         limits=Limits(window=timedelta(minutes=15), per_account=2, per_address=100),
                         timeouts=Timeouts(idle=timedelta(minutes=30), absolute=timedelta(hours=8)))
    return PasswordLogin(runtime.engine, runtime.secrets, runtime.clock, config)


def test_a_throttled_login_is_logged_once_per_window(runtime: Runtime, engine: Engine, clock: FixedClock,
                                                     citizen: Person) -> None:
    service = _password_login(runtime)

    def attempt(password: str) -> type[Exception]:
        with pytest.raises((LoginFailed, TooManyLoginAttempts)) as raised:
            service.login(citizen.email, password, address="203.0.113.9", user_agent=None)
        return raised.type

    assert [attempt("wrong") for _ in range(2)] == [LoginFailed, LoginFailed]
    assert [attempt(citizen.password) for _ in range(3)] == [TooManyLoginAttempts] * 3  # even the right one
    reasons = [e["details"]["reason"] for e in entries_of(engine, action=actions.LOGIN_FAILED)]
    assert reasons == ["wrong-password", "wrong-password", "throttled"]
    throttled = entries_of(engine, action=actions.LOGIN_FAILED)[-1]
    assert throttled["actor"] == f"citizen:{pseudonym(runtime, citizen)}"
    assert throttled["details"] == {"method": "password", "role": "citizen", "reason": "throttled"}
    clean(throttled, citizen.email, citizen.password, "203.0.113.9")

    clock.advance(minutes=16)  # a new window: two more failures, throttled again, logged again
    assert [attempt("wrong") for _ in range(2)] + [attempt("wrong")] == [LoginFailed, LoginFailed,
                                                                           TooManyLoginAttempts]
    reasons = [e["details"]["reason"] for e in entries_of(engine, action=actions.LOGIN_FAILED)]
    assert reasons.count("throttled") == 2


def test_a_throttled_unknown_address_is_logged_as_anonymous(runtime: Runtime, engine: Engine) -> None:
    service = _password_login(runtime)
    for _ in range(4):
        with pytest.raises((LoginFailed, TooManyLoginAttempts)):
            service.login("nobody@lyon.example", "guess", address=None, user_agent=None)
    throttled = [e for e in entries_of(engine, action=actions.LOGIN_FAILED) if e["details"]["reason"] == "throttled"]
    assert len(throttled) == 1 and throttled[0]["actor"] == "anonymous"
    clean(throttled[0], "nobody", "guess")


def test_logout_is_logged_by_the_account_that_ends_its_session(app_client: TestClient, engine: Engine,
                                                               runtime: Runtime, citizen: Person) -> None:
    logged_in(app_client, citizen)
    session_cookie = app_client.cookies["broker_session"]
    assert app_client.post("/logout", headers=csrf_headers(app_client), follow_redirects=False).status_code == 303
    out = only(engine, actions.LOGOUT)
    assert out["actor"] == f"citizen:{pseudonym(runtime, citizen)}"
    assert out["details"] == {"method": "password", "role": "citizen"}
    clean(out, citizen.email, session_cookie)
    app_client.post("/logout", headers=csrf_headers(app_client), follow_redirects=False)  # no session: no entry
    assert len(entries_of(engine, action=actions.LOGOUT)) == 1


# -- the bearer-token guard ---------------------------------------------------------------------------------

def test_too_little_scope_is_logged_by_the_service(app_client: TestClient, engine: Engine, clock: FixedClock,
                                                   service_client: tuple[str, ECKey]) -> None:
    service_id, key = service_client
    token = access_token(app_client, key, service_id, clock)
    refused = app_client.post("/v1/ingest/energy-readings", json={"records": []}, headers=bearer(token))
    assert refused.status_code == 403
    entry = only(engine, actions.AUTHORIZATION_FAILED)
    assert entry["actor"] == f"service:{service_id}"
    assert entry["details"] == {"resource": "/v1/ingest/{dataset}", "reason": "insufficient-scope",
                                "required": ["ingest"], "jti": claims_of(token)[1]["jti"]}
    clean(entry, token)


def test_a_revoked_token_is_logged_by_its_service_and_a_forged_one_not_at_all(
        app_client: TestClient, engine: Engine, clock: FixedClock, service_client: tuple[str, ECKey]) -> None:
    service_id, key = service_client
    token = access_token(app_client, key, service_id, clock)
    signed = assertion(key, service_id, clock, audience=ISSUER + "/oauth/revoke")
    assert app_client.post("/oauth/revoke", data=assertion_form(signed, token=token)).status_code == 200
    assert app_client.post("/v1/queries", json={}, headers=bearer(token)).status_code == 401
    entry = only(engine, actions.AUTHORIZATION_FAILED)
    assert entry["actor"] == f"service:{service_id}"
    assert entry["details"] == {"resource": "/v1/queries", "reason": "invalid-token", "jti": claims_of(token)[1]["jti"]}
    clean(entry, token)

    for headers in ({}, bearer("not-a-token"), bearer(token[:-4] + "AAAA")):  # no one is named: no entry
        assert app_client.post("/v1/queries", json={}, headers=headers).status_code == 401
    assert len(entries_of(engine, action=actions.AUTHORIZATION_FAILED)) == 1


# -- staff and services on citizens' endpoints ---------------------------------------------------------------

def test_staff_on_a_citizens_endpoint_is_logged(app_client: TestClient, engine: Engine, auditor: Person) -> None:
    logged_in(app_client, auditor)
    assert app_client.get("/v1/me/consents").status_code == 403
    entry = only(engine, actions.AUTHORIZATION_FAILED)
    assert entry["actor"] == f"staff:{auditor.account_id}"
    assert entry["details"] == {"resource": "/v1/me/consents", "reason": "role auditor has no citizen's space"}
    clean(entry, auditor.email)


def test_a_service_token_on_a_citizens_endpoint_is_logged_by_the_service(
        app_client: TestClient, engine: Engine, clock: FixedClock, service_client: tuple[str, ECKey]) -> None:
    service_id, key = service_client
    token = access_token(app_client, key, service_id, clock)
    assert app_client.get("/v1/me/consents", headers=bearer(token)).status_code == 401
    entry = only(engine, actions.AUTHORIZATION_FAILED)
    assert entry["actor"] == f"service:{service_id}"
    assert entry["details"]["reason"] == "service-token-on-portal"
    assert entry["details"]["resource"] == "/v1/me/consents"
    clean(entry, token)
    assert app_client.get("/v1/me/consents").status_code == 401  # no session, no token: nobody to name
    assert len(entries_of(engine, action=actions.AUTHORIZATION_FAILED)) == 1


# -- client authentication at the token endpoint ------------------------------------------------------------

def test_a_failed_client_authentication_is_logged_by_the_service_it_names(
        app_client: TestClient, engine: Engine, clock: FixedClock, service_client: tuple[str, ECKey]) -> None:
    service_id, _ = service_client
    stranger_key = ECKey.generate_key("P-256")
    forged = assertion(stranger_key, service_id, clock)
    refused = app_client.post("/oauth/token", data=assertion_form(forged, grant_type="client_credentials"))
    assert refused.json()["error"] == "invalid_client", refused.text
    entry = only(engine, actions.LOGIN_FAILED)
    assert entry["actor"] == f"service:{service_id}"
    assert entry["details"] == {"method": "client-authentication", "client_id": service_id, "endpoint": "token",
                                "reason": "invalid-client"}
    clean(entry, forged)

    nobody = assertion(stranger_key, "no-such-client", clock)  # names no client of ours: no entry
    answer = app_client.post("/oauth/token", data=assertion_form(nobody, grant_type="client_credentials"))
    assert answer.json()["error"] == "invalid_client", answer.text
    assert len(entries_of(engine, action=actions.LOGIN_FAILED)) == 1
