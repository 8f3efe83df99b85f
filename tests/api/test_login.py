"""Portal login through the form (DESIGN §6): cookies, redirects, rate limits, sessions and their timeouts."""

from __future__ import annotations

from http.cookies import SimpleCookie

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from broker.api.csrf import CSRF_COOKIE
from broker.api.portal import SESSION_COOKIE
from broker.db import session_scope
from broker.errors import PROBLEM_BASE
from broker.identity.models import Account
from broker.timeutil import FixedClock
from tests.api.conftest import AppFactory
from tests.support.people import ORIGIN, Person, csrf_headers, logged_in, login, login_form_token

PROBLEM = "application/problem+json"


def _set_cookies(response) -> dict[str, SimpleCookie]:
    cookies = {}
    for header in response.headers.get_list("set-cookie"):
        cookie = SimpleCookie()
        cookie.load(header)
        cookies.update({name: cookie for name in cookie})
    return cookies


def test_the_form_carries_a_csrf_token_equal_to_its_cookie(client: TestClient) -> None:
    page = client.get("/login")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<html lang="fr">' in page.text and "Mot de passe" in page.text
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
    token = login_form_token(client)
    assert client.get("/login").text.count(token) == 1  # the token stays put while the cookie is valid
    csrf = _set_cookies(page)[CSRF_COOKIE][CSRF_COOKIE]
    assert csrf["samesite"] == "lax" and not csrf["httponly"]  # scripts read it to echo it


@pytest.mark.parametrize(("query", "accept", "lang"), [
    ("", "en-GB,en;q=0.9,fr;q=0.5", "en"),
    ("", "de-DE, fr;q=0.4, en;q=0.3", "fr"),
    ("?lang=en", "fr", "en"),
    ("?lang=xx", "", "fr"),
])
def test_the_form_speaks_french_or_english(client: TestClient, query: str, accept: str, lang: str) -> None:
    page = client.get("/login" + query, headers={"Accept-Language": accept})
    assert f'<html lang="{lang}">' in page.text
    assert ("Password" in page.text) == (lang == "en")


def test_login_sets_a_hardened_session_cookie_and_redirects(client: TestClient, citizen: Person) -> None:
    response = login(client, citizen.email, citizen.password)
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookies = _set_cookies(response)
    session = cookies[SESSION_COOKIE][SESSION_COOKIE]
    assert session["httponly"] and session["samesite"] == "lax" and session["path"] == "/"
    assert not session["secure"]  # plain http on loopback
    assert len(session.value) >= 43  # 32 random bytes, base64url
    assert client.get("/v1/me").status_code == 200


def test_cookies_are_secure_over_https(app_with: AppFactory, citizen: Person) -> None:
    origin = "https://127.0.0.1:8000"
    with app_with(base_url=origin) as client:
        assert _set_cookies(client.get("/login"))[CSRF_COOKIE][CSRF_COOKIE]["secure"]
        response = login(client, citizen.email, citizen.password, origin=origin)
        assert response.status_code == 303
        cookies = _set_cookies(response)
        assert cookies[SESSION_COOKIE][SESSION_COOKIE]["secure"]
        assert cookies[CSRF_COOKIE][CSRF_COOKIE]["secure"]


@pytest.mark.parametrize(("asked", "landing"), [
    ("/v1/me", "/v1/me"),
    ("/portal/consents?tab=2", "/portal/consents?tab=2"),
    ("https://evil.example/", "/"),
    ("//evil.example/x", "/"),
    ("/\\evil.example", "/"),
    ("javascript:alert(1)", "/"),
])
def test_next_is_a_local_path_only(client: TestClient, citizen: Person, asked: str, landing: str) -> None:
    response = login(client, citizen.email, citizen.password, next=asked)
    assert response.status_code == 303 and response.headers["location"] == landing


@pytest.mark.parametrize("which", ["wrong password", "unknown email"])
def test_a_failed_login_says_the_same_whatever_was_wrong(client: TestClient, citizen: Person, which: str) -> None:
    email = citizen.email if which == "wrong password" else "nobody@lyon.example"
    response = login(client, email, "not the password")
    assert response.status_code == 401
    assert "n’est pas correct" in response.text and 'role="alert"' in response.text
    assert SESSION_COOKIE not in _set_cookies(response)
    assert client.get("/v1/me").status_code == 401


def test_a_disabled_account_cannot_log_in(client: TestClient, engine: Engine, citizen: Person,
                                          clock: FixedClock) -> None:
    with session_scope(engine) as session:
        account = session.get(Account, citizen.account_id)
        account.disabled_at = clock.now()
        session.add(account)
    assert login(client, citizen.email, citizen.password).status_code == 401


def test_disabling_an_account_ends_its_sessions(client: TestClient, engine: Engine, citizen: Person,
                                                clock: FixedClock) -> None:
    logged_in(client, citizen)
    with session_scope(engine) as session:
        account = session.get(Account, citizen.account_id)
        account.disabled_at = clock.now()
        session.add(account)
    assert client.get("/v1/me").status_code == 401


def test_too_many_failures_for_one_account_answer_429(client: TestClient, citizen: Person,
                                                      clock: FixedClock) -> None:
    for _ in range(5):
        assert login(client, citizen.email, "guess").status_code == 401
    refused = login(client, citizen.email, citizen.password)  # even the right password, until the window ends
    assert refused.status_code == 429
    assert refused.headers["content-type"] == PROBLEM
    assert refused.json()["type"] == PROBLEM_BASE + "too-many-login-attempts"
    assert int(refused.headers["retry-after"]) == 15 * 60
    clock.advance(minutes=10)
    assert int(login(client, citizen.email, citizen.password).headers["retry-after"]) == 5 * 60
    clock.advance(minutes=5)
    assert login(client, citizen.email, citizen.password).status_code == 303


def test_a_right_password_clears_the_account_count(client: TestClient, citizen: Person) -> None:
    for _ in range(4):
        login(client, citizen.email, "guess")
    assert login(client, citizen.email, citizen.password).status_code == 303
    for _ in range(4):
        assert login(client, citizen.email, "guess").status_code == 401


def test_too_many_failures_from_one_address_answer_429(app_with: AppFactory, citizen: Person) -> None:
    with app_with(address="203.0.113.7", login_max_failures_per_address=3) as client:
        for n in range(3):
            assert login(client, f"guess{n}@lyon.example", "guess").status_code == 401
        refused = login(client, citizen.email, citizen.password)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    with app_with(address="198.51.100.9", login_max_failures_per_address=3) as elsewhere:
        assert login(elsewhere, citizen.email, citizen.password).status_code == 303


def test_the_limit_is_shared_by_every_worker(app_with: AppFactory, citizen: Person) -> None:
    """Two app instances on one database stand for two workers behind a load balancer."""
    with app_with() as first, app_with() as second:
        for n in range(5):
            assert login(first if n % 2 else second, citizen.email, "guess").status_code == 401
        assert login(first, citizen.email, citizen.password).status_code == 429
        assert login(second, citizen.email, citizen.password).status_code == 429


def test_throttle_rows_hold_no_email_or_address(client: TestClient, engine: Engine, citizen: Person) -> None:
    login(client, citizen.email, "guess")
    with engine.connect() as conn:
        keys = [row[0] for row in conn.execute(text("SELECT key FROM login_throttle"))]
    assert len(keys) == 2
    assert not any(citizen.email in k or "testclient" in k for k in keys)


def test_password_login_can_be_switched_off(app_with: AppFactory, citizen: Person) -> None:
    with app_with(local_accounts=False) as client:
        page = client.get("/login")
        assert 'type="password"' not in page.text
        response = client.post("/login", data={"email": citizen.email, "password": citizen.password,
                                               "csrf_token": client.cookies[CSRF_COOKIE]},
                               headers={"Origin": ORIGIN}, follow_redirects=False)
        assert response.status_code == 403
        assert response.json()["type"] == PROBLEM_BASE + "local-accounts-disabled"


def test_login_issues_a_new_session_id_whatever_the_browser_brought(client: TestClient, citizen: Person) -> None:
    client.cookies.set(SESSION_COOKIE, "planted-by-an-attacker", domain="127.0.0.1")
    logged_in(client, citizen)
    first = client.cookies[SESSION_COOKIE]
    assert first != "planted-by-an-attacker"
    csrf_before = client.cookies[CSRF_COOKIE]
    logged_in(client, citizen)  # logging in again rotates the id and revokes the previous one
    second = client.cookies[SESSION_COOKIE]
    assert second != first and client.cookies[CSRF_COOKIE] != csrf_before
    assert client.get("/v1/me").status_code == 200
    client.cookies.set(SESSION_COOKIE, first, domain="127.0.0.1")
    assert client.get("/v1/me").status_code == 401


def test_the_database_never_holds_a_session_id(client: TestClient, engine: Engine, citizen: Person) -> None:
    logged_in(client, citizen)
    token = client.cookies[SESSION_COOKIE]
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM portal_session")).mappings().all()
    assert len(rows) == 1
    assert token not in repr(dict(rows[0]))
    assert rows[0]["account_id"] == citizen.account_id and rows[0]["method"] == "password"


def test_logout_revokes_the_session(client: TestClient, citizen: Person) -> None:
    logged_in(client, citizen)
    token = client.cookies[SESSION_COOKIE]
    response = client.post("/logout", headers=csrf_headers(client), follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"
    client.cookies.set(SESSION_COOKIE, token, domain="127.0.0.1")  # a copy of the old cookie
    gone = client.get("/v1/me")
    assert gone.status_code == 401 and gone.headers["content-type"] == PROBLEM
    assert gone.json()["type"] == PROBLEM_BASE + "unauthenticated"


def test_logout_accepts_the_token_as_a_form_field(client: TestClient, citizen: Person) -> None:
    logged_in(client, citizen)
    response = client.post("/logout", data={"csrf_token": client.cookies[CSRF_COOKIE]},
                           headers={"Origin": ORIGIN}, follow_redirects=False)
    assert response.status_code == 303
    assert client.get("/v1/me").status_code == 401


def test_an_idle_session_ends(client: TestClient, citizen: Person, clock: FixedClock) -> None:
    logged_in(client, citizen)
    for _ in range(3):
        clock.advance(minutes=29)
        assert client.get("/v1/me").status_code == 200  # activity keeps it alive
    clock.advance(minutes=30)
    assert client.get("/v1/me").status_code == 401


def test_a_session_ends_after_the_absolute_timeout(client: TestClient, citizen: Person, clock: FixedClock) -> None:
    logged_in(client, citizen)
    for _ in range(28):  # 28 × 25 min = 11 h 40
        clock.advance(minutes=25)
        assert client.get("/v1/me").status_code == 200
    clock.advance(minutes=25)
    assert client.get("/v1/me").status_code == 401


def test_staff_log_in_but_have_no_personal_space(client: TestClient, auditor: Person) -> None:
    logged_in(client, auditor)
    response = client.get("/v1/me")
    assert response.status_code == 403 and response.headers["content-type"] == PROBLEM
