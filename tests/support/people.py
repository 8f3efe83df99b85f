"""Factories for people who log in (citizens with accounts, staff) and the portal's login form flow."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from broker.api.csrf import CSRF_COOKIE
from broker.api.portal import SESSION_COOKIE
from broker.db import session_scope
from broker.identity.accounts import AccountService, Role
from broker.identity.citizens import CitizenService
from broker.keys import Secrets
from broker.timeutil import Clock

ORIGIN = "http://127.0.0.1:8000"
PASSWORD = "correct horse battery staple"
_HIDDEN_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass(frozen=True)
class Person:
    email: str
    password: str
    account_id: str
    citizen_id: str | None


def make_citizen(engine: Engine, secrets: Secrets, clock: Clock, *, email: str | None = None,
                 password: str = PASSWORD, born: date | None = date(1985, 6, 1)) -> Person:
    email = email or f"{uuid.uuid4().hex[:12]}@lyon.example"
    with session_scope(engine) as session:
        citizen = CitizenService(session, secrets).register(
            email=email, name="Habitant Test", birth_date=born, district="lyon-3", locale="fr", now=clock.now())
        account = AccountService(session, secrets).create(email=email, password=password, role=Role.citizen,
                                                          now=clock.now(), citizen_id=citizen.id)
        return Person(email=email, password=password, account_id=account.id, citizen_id=citizen.id)


def make_staff(engine: Engine, secrets: Secrets, clock: Clock, role: Role = Role.auditor, *,
               password: str = PASSWORD) -> Person:
    email = f"staff-{uuid.uuid4().hex[:8]}@lyon.example"
    with session_scope(engine) as session:
        account = AccountService(session, secrets).create(email=email, password=password, role=role,
                                                          now=clock.now())
        return Person(email=email, password=password, account_id=account.id, citizen_id=None)


def login_form_token(client: TestClient) -> str:
    """GET /login, as a browser: returns the hidden field, which must equal the cookie just set."""
    page = client.get("/login")
    assert page.status_code == 200
    hidden = _HIDDEN_TOKEN.search(page.text)
    assert hidden is not None
    assert hidden.group(1) == client.cookies[CSRF_COOKIE]
    return hidden.group(1)


def login(client: TestClient, email: str, password: str, *, origin: str = ORIGIN, **fields: str) -> httpx.Response:
    """The real form flow: GET /login, then POST the form with its hidden token from the same origin."""
    token = login_form_token(client)
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token, **fields},
                       headers={"Origin": origin}, follow_redirects=False)


def logged_in(client: TestClient, person: Person) -> TestClient:
    response = login(client, person.email, person.password)
    assert response.status_code == 303, response.text
    assert client.cookies.get(SESSION_COOKIE)
    return client


def csrf_headers(client: TestClient, origin: str = ORIGIN) -> dict[str, str]:
    """What the portal's scripts send on a state-changing JSON call."""
    return {"X-CSRF-Token": client.cookies[CSRF_COOKIE], "Origin": origin}
