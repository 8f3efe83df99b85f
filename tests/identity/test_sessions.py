"""Portal sessions in the database: hashed ids, idle and absolute timeouts, revocation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, text

from broker.db import session_scope
from broker.identity.models import Account
from broker.identity.sessions import SessionStore, Timeouts, browser_family, session_hash
from broker.keys import Secrets
from broker.timeutil import FixedClock
from tests.support.people import make_citizen

TIMEOUTS = Timeouts(idle=timedelta(minutes=30), absolute=timedelta(hours=12))


def _open(engine: Engine, secrets: Secrets, clock: FixedClock) -> tuple[str, str]:
    person = make_citizen(engine, secrets, clock)
    with session_scope(engine) as session:
        account = session.get(Account, person.account_id)
        token = SessionStore(session, clock, TIMEOUTS).open(account, method="password",
                                                           user_agent="Mozilla/5.0 (X11) Firefox/130.0")
    return token, person.account_id


def _resolve(engine: Engine, clock: FixedClock, token: str | None):
    with session_scope(engine) as session:
        return SessionStore(session, clock, TIMEOUTS).resolve(token)


def test_a_session_resolves_to_its_account(engine: Engine, secrets: Secrets, clock: FixedClock) -> None:
    token, account_id = _open(engine, secrets, clock)
    principal = _resolve(engine, clock, token)
    assert principal is not None and principal.account_id == account_id and principal.role == "citizen"
    assert principal.session_hash == session_hash(token) and principal.method == "password"
    assert _resolve(engine, clock, token + "x") is None and _resolve(engine, clock, None) is None
    with engine.connect() as conn:
        row = conn.execute(text("SELECT id_hash, user_agent FROM portal_session")).one()
    assert row == (session_hash(token), "Firefox")


def test_activity_is_recorded_at_most_once_a_minute(engine: Engine, secrets: Secrets, clock: FixedClock) -> None:
    token, _ = _open(engine, secrets, clock)
    opened = clock.now()

    def last_seen():
        with session_scope(engine) as session:
            from broker.identity.models import PortalSession

            row = session.get(PortalSession, session_hash(token))
            return row.last_seen_at.replace(tzinfo=None)

    clock.advance(seconds=30)
    _resolve(engine, clock, token)
    assert last_seen() == opened.replace(tzinfo=None)
    clock.advance(seconds=31)
    _resolve(engine, clock, token)
    assert last_seen() == clock.now().replace(tzinfo=None)


@pytest.mark.parametrize(("steps", "alive"), [
    ([29], True), ([30], False), ([29, 29, 29], True), ([20, 45], False),
])
def test_idle_timeout(engine: Engine, secrets: Secrets, clock: FixedClock, steps: list[int], alive: bool) -> None:
    token, _ = _open(engine, secrets, clock)
    results = []
    for minutes in steps:
        clock.advance(minutes=minutes)
        results.append(_resolve(engine, clock, token) is not None)
    assert results[-1] is alive


def test_absolute_timeout(engine: Engine, secrets: Secrets, clock: FixedClock) -> None:
    token, _ = _open(engine, secrets, clock)
    for _ in range(47):  # 47 × 15 min = 11 h 45
        clock.advance(minutes=15)
        assert _resolve(engine, clock, token) is not None
    clock.advance(minutes=15)
    assert _resolve(engine, clock, token) is None


def test_revocation_one_and_all(engine: Engine, secrets: Secrets, clock: FixedClock) -> None:
    token, account_id = _open(engine, secrets, clock)
    with session_scope(engine) as session:
        account = session.get(Account, account_id)
        second = SessionStore(session, clock, TIMEOUTS).open(account, method="password")
        third = SessionStore(session, clock, TIMEOUTS).open(account, method="oidc")
    with session_scope(engine) as session:
        SessionStore(session, clock, TIMEOUTS).revoke(token)
    assert _resolve(engine, clock, token) is None and _resolve(engine, clock, second) is not None
    with session_scope(engine) as session:
        SessionStore(session, clock, TIMEOUTS).revoke_all(account_id)
    assert _resolve(engine, clock, second) is None and _resolve(engine, clock, third) is None
    with engine.connect() as conn:  # kept, revoked, for audit
        assert conn.execute(text("SELECT count(*) FROM portal_session WHERE revoked_at IS NOT NULL")).scalar() == 3


@pytest.mark.parametrize(("agent", "family"), [
    ("Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 Chrome/126.0 Safari/537.36 Edg/126.0", "Edge"),
    ("Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 Version/17.5 Safari/605.1.15", "Safari"),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36", "Chrome"),
    ("python-httpx/0.28", "other"), (None, None),
])
def test_only_the_browser_family_is_kept(agent: str | None, family: str | None) -> None:
    assert browser_family(agent) == family
