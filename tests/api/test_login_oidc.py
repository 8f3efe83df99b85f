"""Login through the city's OpenID provider, end to end over real HTTP against the test provider.

The broker fetches discovery, keys and tokens from the provider on a loopback port; the test plays the
browser, following each redirect by hand with the TestClient (the broker) and httpx (the provider).
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, text

from broker.api.portal import SESSION_COOKIE
from broker.errors import PROBLEM_BASE
from broker.keys import Secrets
from broker.timeutil import FixedClock
from tests.api.conftest import AppFactory
from tests.support.oidc_provider import OidcTestProvider, TestUser
from tests.support.people import Person, csrf_headers, logged_in, make_citizen

PROBLEM = "application/problem+json"


def to_provider(client: TestClient, next_path: str | None = None) -> httpx.Response:
    """The browser goes to /login/oidc, then to the provider, which answers with a redirect back."""
    start = client.get("/login/oidc", params={"next": next_path} if next_path else None, follow_redirects=False)
    assert start.status_code == 302, start.text
    authorize = httpx.get(start.headers["location"], follow_redirects=False)
    assert authorize.status_code == 302, authorize.text
    return authorize


def callback_path(authorize: httpx.Response) -> str:
    back = urlsplit(authorize.headers["location"])
    assert f"{back.scheme}://{back.netloc}" == "http://127.0.0.1:8000"
    return f"{back.path}?{back.query}"


def oidc_login(client: TestClient, next_path: str | None = None) -> httpx.Response:
    return client.get(callback_path(to_provider(client, next_path)), follow_redirects=False)


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def refused(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == PROBLEM_BASE + "oidc-login-failed"
    assert SESSION_COOKIE not in response.cookies


def test_the_authorization_request_uses_pkce_and_a_nonce(oidc_client: TestClient,
                                                         oidc_provider: OidcTestProvider) -> None:
    start = oidc_client.get("/login/oidc", follow_redirects=False)
    url = urlsplit(start.headers["location"])
    params = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert f"{url.scheme}://{url.netloc}" == oidc_provider.issuer and url.path == "/authorize"
    assert params["response_type"] == "code" and params["client_id"] == oidc_provider.client_id
    assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43
    assert params["nonce"] and params["state"]
    assert set(params["scope"].split()) == {"openid", "email", "profile"}
    assert params["redirect_uri"] == "http://127.0.0.1:8000/login/oidc/callback"
    binding = start.headers["set-cookie"]
    assert "HttpOnly" in binding and "Path=/login/oidc" in binding and "SameSite=lax" in binding


def test_a_first_login_creates_a_citizen_and_links_them(oidc_client: TestClient, oidc_provider: OidcTestProvider,
                                                        engine: Engine) -> None:
    done = oidc_login(oidc_client)
    assert done.status_code == 303 and done.headers["location"] == "/"
    assert oidc_provider.token_requests[-1]["code_verifier"]  # the provider checked it against the challenge
    me = oidc_client.get("/v1/me").json()
    assert me["email"] == oidc_provider.user.email and me["name"] == "Camille Martin"
    assert me["birth_date"] == "1988-04-12" and me["locale"] == "fr"
    assert count(engine, "oidc_link") == 1 and count(engine, "citizen") == 1
    with engine.connect() as conn:
        link = conn.execute(text("SELECT * FROM oidc_link")).mappings().one()
    assert oidc_provider.user.sub not in repr(dict(link))  # the subject is kept only as a keyed hash
    assert count(engine, "oidc_login_state") == 0  # used once, then gone


def test_a_second_login_reuses_the_link(oidc_client: TestClient, engine: Engine) -> None:
    oidc_login(oidc_client)
    first = oidc_client.get("/v1/me").json()["pseudonym"]
    first_session = oidc_client.cookies[SESSION_COOKIE]
    oidc_client.cookies.clear()
    assert oidc_login(oidc_client).status_code == 303
    assert oidc_client.get("/v1/me").json()["pseudonym"] == first
    assert oidc_client.cookies[SESSION_COOKIE] != first_session
    assert count(engine, "citizen") == 1 and count(engine, "oidc_link") == 1


def test_a_registered_citizen_is_linked_by_verified_email(oidc_client: TestClient, oidc_provider: OidcTestProvider,
                                                          engine: Engine, secrets: Secrets,
                                                          clock: FixedClock) -> None:
    existing = make_citizen(engine, secrets, clock, email=oidc_provider.user.email.upper())
    assert oidc_login(oidc_client).status_code == 303
    assert oidc_client.get("/v1/me").json()["pseudonym"] == secrets.pseudonym(existing.citizen_id or "")
    assert count(engine, "citizen") == 1 and count(engine, "account") == 1


def test_an_unverified_email_is_not_trusted(oidc_client: TestClient, oidc_provider: OidcTestProvider,
                                            engine: Engine, secrets: Secrets, clock: FixedClock) -> None:
    make_citizen(engine, secrets, clock, email=oidc_provider.user.email)
    oidc_provider.user = TestUser(email_verified=False)
    refused(oidc_login(oidc_client))
    assert count(engine, "oidc_link") == 0


@pytest.mark.parametrize("tamper", ["nonce", "audience"])
def test_an_id_token_for_another_login_is_refused(oidc_client: TestClient, oidc_provider: OidcTestProvider,
                                                  engine: Engine, tamper: str) -> None:
    if tamper == "nonce":
        oidc_provider.nonce_override = "a-nonce-from-another-login"
    else:
        oidc_provider.audience_override = "another-client"
    refused(oidc_login(oidc_client))
    assert count(engine, "citizen") == 0
    assert oidc_client.get("/v1/me").status_code == 401


def test_a_tampered_state_is_refused(oidc_client: TestClient) -> None:
    path = callback_path(to_provider(oidc_client))
    state = parse_qs(urlsplit(path).query)["state"][0]
    refused(oidc_client.get(path.replace(state, state[:-3] + "abc"), follow_redirects=False))


def test_a_callback_in_another_browser_is_refused(oidc_client: TestClient) -> None:
    """The state is bound to the browser that started the login (RFC 6749 §10.12): a login link sent to a
    victim cannot log them into the attacker's account."""
    path = callback_path(to_provider(oidc_client))
    oidc_client.cookies.clear()
    refused(oidc_client.get(path, follow_redirects=False))


def test_a_state_works_once(oidc_client: TestClient) -> None:
    path = callback_path(to_provider(oidc_client))
    binding = oidc_client.cookies.get("oidc_binding")
    assert oidc_client.get(path, follow_redirects=False).status_code == 303
    oidc_client.cookies.set("oidc_binding", binding or "", domain="127.0.0.1", path="/login/oidc")
    refused(oidc_client.get(path, follow_redirects=False))


def test_a_state_expires(oidc_client: TestClient, clock: FixedClock) -> None:
    path = callback_path(to_provider(oidc_client))
    clock.advance(minutes=11)
    refused(oidc_client.get(path, follow_redirects=False))


def test_a_provider_error_is_refused(oidc_client: TestClient) -> None:
    path = callback_path(to_provider(oidc_client))
    state = parse_qs(urlsplit(path).query)["state"][0]
    refused(oidc_client.get(f"/login/oidc/callback?error=access_denied&state={state}", follow_redirects=False))


def test_next_survives_the_round_trip(oidc_client: TestClient) -> None:
    done = oidc_login(oidc_client, next_path="/v1/me/consents")
    assert done.headers["location"] == "/v1/me/consents"
    assert oidc_login(oidc_client, next_path="https://evil.example/").headers["location"] == "/"


def test_login_replaces_any_session_the_browser_had(oidc_client: TestClient, citizen: Person) -> None:
    logged_in(oidc_client, citizen)
    before = oidc_client.cookies[SESSION_COOKIE]
    oidc_login(oidc_client)
    oidc_client.cookies.set(SESSION_COOKIE, before, domain="127.0.0.1")
    assert oidc_client.get("/v1/me").status_code == 401


def test_a_provider_account_erases_after_a_fresh_login(oidc_client: TestClient, engine: Engine,
                                                       clock: FixedClock) -> None:
    oidc_login(oidc_client)
    clock.advance(minutes=11)
    stale = oidc_client.request("DELETE", "/v1/me", json={}, headers=csrf_headers(oidc_client))
    assert stale.status_code == 403  # no password to re-enter: a fresh provider login stands in for it
    oidc_login(oidc_client)
    assert oidc_client.request("DELETE", "/v1/me", json={}, headers=csrf_headers(oidc_client)).status_code == 204
    assert count(engine, "oidc_link") == 0 and count(engine, "account") == 0
    oidc_client.cookies.clear()
    assert oidc_login(oidc_client).status_code == 303  # a new start: a new citizen, nothing of the old one
    assert count(engine, "citizen") == 2


def test_the_form_offers_the_provider(oidc_client: TestClient) -> None:
    assert 'href="/login/oidc?next=/"' in oidc_client.get("/login").text


def test_without_a_provider_there_is_no_oidc_login(client: TestClient) -> None:
    response = client.get("/login/oidc", follow_redirects=False)
    assert response.status_code == 404 and response.headers["content-type"] == PROBLEM
    assert "/login/oidc" not in client.get("/login").text


def test_an_unreachable_provider_answers_503(app_with: AppFactory) -> None:
    with app_with(oidc_issuer="http://127.0.0.1:9", oidc_client_id="broker",
                  oidc_client_secret=SecretStr("secret")) as client:
        response = client.get("/login/oidc", follow_redirects=False)
    assert response.status_code == 503 and response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == PROBLEM_BASE + "oidc-provider-unavailable"
