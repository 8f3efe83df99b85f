"""Helpers for the portal's TestClient tests: posting a page's form as a browser does, a guardian's ward."""

from __future__ import annotations

import re
from datetime import date

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from broker.api.csrf import CSRF_COOKIE
from broker.db import session_scope
from broker.identity.guardianship import Guardianships
from broker.identity.models import Citizen
from broker.keys import Secrets
from broker.timeutil import FixedClock
from tests.support.people import ORIGIN, Person, make_citizen

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def post_form(client: TestClient, page: str, action: str, /, **fields: str) -> httpx.Response:
    """GET ``page``, then post its form to ``action`` with the hidden token, from the portal's origin."""
    token = _TOKEN.search(client.get(page).text)
    assert token is not None and token.group(1) == client.cookies[CSRF_COOKIE]
    return client.post(action, data={"csrf_token": token.group(1), **fields}, headers={"Origin": ORIGIN},
                       follow_redirects=False)


def born_years_ago(clock: FixedClock, years: int) -> date:
    today = clock.now().date()
    return today.replace(year=today.year - years)


def link(engine: Engine, guardian: Person, minor: Person, clock: FixedClock) -> str:
    """The city records ``guardian`` as holding parental responsibility for ``minor``; returns the link id."""
    with session_scope(engine) as session:
        return Guardianships(session).establish(session.get(Citizen, guardian.citizen_id),
                                                session.get(Citizen, minor.citizen_id), basis="registry",
                                                actor="operator", now=clock.now()).id


@pytest.fixture
def ward(engine: Engine, secrets: Secrets, clock: FixedClock, citizen: Person) -> tuple[Person, str]:
    """A 12-year-old in ``citizen``'s care, with their own portal account, and the link's id."""
    minor = make_citizen(engine, secrets, clock, email=None, born=born_years_ago(clock, 12))
    return minor, link(engine, citizen, minor, clock)
