"""``consent-broker db prune``: the login machinery's spent rows go (storage limitation), nothing else does."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from broker.audit import actions
from broker.audit.models import AuditEntry
from broker.cli import app as cli
from broker.consent.models import ConsentRecord
from broker.db import session_scope
from broker.identity.housekeeping import prune
from broker.identity.models import Account, LoginThrottle, OidcLoginState, PortalSession
from broker.identity.ratelimit import Limits, LoginThrottleService
from broker.identity.sessions import SessionStore, Timeouts
from broker.keys import Secrets
from broker.settings import Settings
from broker.timeutil import FixedClock
from tests.support.people import Person, make_citizen

LIMITS = Limits(window=timedelta(minutes=15), per_account=5, per_address=20)
TIMEOUTS = Timeouts(idle=timedelta(minutes=30), absolute=timedelta(hours=12))


def _count(engine: Engine, model: type) -> int:
    with session_scope(engine) as session:
        return session.execute(select(func.count()).select_from(model)).scalar_one()


def _login_traces(engine: Engine, secrets: Secrets, clock: FixedClock, person: Person, *, logout: bool) -> None:
    with session_scope(engine) as session:
        store = SessionStore(session, clock, TIMEOUTS)
        token = store.open(session.get(Account, person.account_id), method="password")
        if logout:
            store.revoke(token)
        stamp = str(clock.now().timestamp())  # throttle rows are per key: each call its own keys
        LoginThrottleService(session, secrets, clock, LIMITS).record_failure(f"email-index-{stamp}", stamp)
        session.add(OidcLoginState(state_hash=f"s{stamp}", binding_hash="b", sealed=b"x",
                                   expires_at=clock.now() + timedelta(minutes=10)))


def test_only_spent_rows_go(engine: Engine, secrets: Secrets, clock: FixedClock) -> None:
    person = make_citizen(engine, secrets, clock)
    _login_traces(engine, secrets, clock, person, logout=True)       # long ago: all spent by the end
    clock.advance(days=100)
    _login_traces(engine, secrets, clock, person, logout=False)      # a moment ago: all still live
    with session_scope(engine) as session:
        consents = session.execute(select(func.count()).select_from(ConsentRecord)).scalar_one()
        pruned = prune(session, secrets, LIMITS, clock.now(), keep_sessions=timedelta(days=90))
    assert pruned.as_dict() == {"login_throttle": 2, "oidc_login_state": 1, "portal_session": 1}
    assert (_count(engine, LoginThrottle), _count(engine, OidcLoginState), _count(engine, PortalSession)) == (2, 1, 1)
    assert _count(engine, ConsentRecord) == consents  # evidence is never pruned


def test_an_ended_session_is_kept_for_review_until_its_time(engine: Engine, secrets: Secrets,
                                                            clock: FixedClock) -> None:
    person = make_citizen(engine, secrets, clock)
    _login_traces(engine, secrets, clock, person, logout=True)
    clock.advance(days=89)
    with session_scope(engine) as session:
        assert prune(session, secrets, LIMITS, clock.now()).portal_session == 0
    clock.advance(days=2)
    with session_scope(engine) as session:
        assert prune(session, secrets, LIMITS, clock.now()).portal_session == 1


def test_the_command_prunes_and_leaves_an_audit_entry(engine: Engine, settings: Settings, secrets: Secrets,
                                                      clock: FixedClock) -> None:
    """The command runs on the system clock: rows dated well in the past are spent whatever today is."""
    person = make_citizen(engine, secrets, clock)
    clock.advance(days=-400)
    _login_traces(engine, secrets, clock, person, logout=True)
    env = {"BROKER_DATA_DIR": str(settings.data_dir), "BROKER_DATABASE_URL": settings.resolved_database_url(),
           "BROKER_POLICY_DIR": str(settings.policy_dir)}
    result = CliRunner().invoke(cli, ["db", "prune", "--keep-sessions-days", "30"], env=env)
    assert result.exit_code == 0, result.output
    assert "portal_session: 1 deleted" in result.output and "login_throttle: 2 deleted" in result.output
    with session_scope(engine) as session:
        bodies = session.execute(select(AuditEntry.body).where(AuditEntry.action == actions.HOUSEKEEPING)).scalars()
        [entry] = [json.loads(b) for b in bodies]
    assert entry["actor"] == "operator"
    assert entry["details"] == {"pruned": {"login_throttle": 2, "oidc_login_state": 1, "portal_session": 1},
                                "keep_sessions_days": 30}
