"""CSRF: double-submit token plus Origin check on cookie-authenticated state changes, and on login."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from broker.api.csrf import CSRF_COOKIE, csrf_key, csrf_token_valid, new_csrf_token
from broker.errors import PROBLEM_BASE
from broker.keys import Secrets
from broker.policy import Policy
from tests.support.people import ORIGIN, Person, csrf_headers, logged_in, login_form_token

PROBLEM = "application/problem+json"


def _purpose(policy: Policy) -> str:
    return next(p.id for p in policy.purposes
                if p.takes_consent and not p.special_category and p.status == "active"
                and policy.minimum_age(p) <= policy.broker.default_minimum_age)


def _refused(response) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == PROBLEM_BASE + "csrf-failed" and body["type"].endswith("csrf-failed")
    assert body["status"] == 403 and body["detail"]


@pytest.fixture
def session_client(client: TestClient, citizen: Person) -> TestClient:
    return logged_in(client, citizen)


def test_the_right_token_from_our_origin_passes(session_client: TestClient, policy: Policy) -> None:
    response = session_client.put(f"/v1/me/consents/{_purpose(policy)}", json={"state": "given"},
                                  headers=csrf_headers(session_client))
    assert response.status_code == 200, response.text


def test_a_referer_from_our_origin_stands_in_for_a_missing_origin(session_client: TestClient,
                                                                  policy: Policy) -> None:
    headers = {"X-CSRF-Token": session_client.cookies[CSRF_COOKIE], "Referer": ORIGIN + "/portal/consents"}
    response = session_client.put(f"/v1/me/consents/{_purpose(policy)}", json={"state": "given"}, headers=headers)
    assert response.status_code == 200


@pytest.mark.parametrize("case", ["missing token", "wrong token", "token of another browser", "cross-origin",
                                  "cross-site referer", "null origin", "no origin nor referer"])
def test_a_state_change_without_proof_is_refused(session_client: TestClient, policy: Policy, secrets: Secrets,
                                                 case: str) -> None:
    good = session_client.cookies[CSRF_COOKIE]
    headers = {
        "missing token": {"Origin": ORIGIN},
        "wrong token": {"Origin": ORIGIN, "X-CSRF-Token": good[:-2] + "xx"},
        "token of another browser": {"Origin": ORIGIN, "X-CSRF-Token": new_csrf_token(csrf_key(secrets))},
        "cross-origin": {"Origin": "https://evil.example", "X-CSRF-Token": good},
        "cross-site referer": {"Referer": "https://evil.example/page", "X-CSRF-Token": good},
        "null origin": {"Origin": "null", "X-CSRF-Token": good},
        "no origin nor referer": {"X-CSRF-Token": good},
    }[case]
    _refused(session_client.put(f"/v1/me/consents/{_purpose(policy)}", json={"state": "given"}, headers=headers))
    consents = session_client.get("/v1/me/consents").json()["consents"]
    assert all(c["record_id"] is None for c in consents)  # nothing was written


def test_a_planted_cookie_is_refused_even_when_echoed(session_client: TestClient, policy: Policy) -> None:
    """A sibling subdomain can set a cookie for us (cookie tossing) but cannot mint a token we would accept."""
    session_client.cookies.set(CSRF_COOKIE, "chosen.by-the-attacker", domain="127.0.0.1")
    headers = {"Origin": ORIGIN, "X-CSRF-Token": "chosen.by-the-attacker"}
    _refused(session_client.put(f"/v1/me/consents/{_purpose(policy)}", json={"state": "given"}, headers=headers))


@pytest.mark.parametrize("method", ["post", "delete"])
def test_other_unsafe_methods_are_checked_too(session_client: TestClient, method: str) -> None:
    path = "/logout" if method == "post" else "/v1/me"
    _refused(session_client.request(method.upper(), path, headers={"Origin": ORIGIN}))
    assert session_client.get("/v1/me").status_code == 200  # still logged in, still there


def test_reads_are_not_checked(session_client: TestClient) -> None:
    assert session_client.get("/v1/me", headers={"Origin": "https://evil.example"}).status_code == 200


def test_requests_without_the_session_cookie_are_not_checked(client: TestClient, policy: Policy) -> None:
    """Machine clients send a Bearer token and no cookie: nothing ambient to forge, so no CSRF check."""
    response = client.put(f"/v1/me/consents/{_purpose(policy)}", json={"state": "given"},
                          headers={"Authorization": "Bearer not-a-session"})
    assert response.status_code == 401


@pytest.mark.parametrize("case", ["no cookie", "field differs from cookie", "other origin"])
def test_login_itself_is_protected(client: TestClient, citizen: Person, case: str) -> None:
    """Login CSRF would log the victim into the attacker's account and record their consents there."""
    token = login_form_token(client)
    data = {"email": citizen.email, "password": citizen.password, "csrf_token": token}
    headers = {"Origin": ORIGIN}
    if case == "no cookie":
        client.cookies.clear()
    elif case == "field differs from cookie":
        data["csrf_token"] = token[:-2] + "xx"
    else:
        headers = {"Origin": "https://evil.example"}
    _refused(client.post("/login", data=data, headers=headers, follow_redirects=False))


def test_tokens_are_bound_to_this_broker(secrets: Secrets) -> None:
    key = csrf_key(secrets)
    token = new_csrf_token(key)
    assert csrf_token_valid(key, token)
    assert not csrf_token_valid(key, token + "a")
    assert not csrf_token_valid(b"another broker's key", token)
    assert not csrf_token_valid(key, None) and not csrf_token_valid(key, "no-dot")
