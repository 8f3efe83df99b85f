"""Portal sessions: a random id in the cookie, the session itself in the database.

The cookie carries 256 random bits (``secrets.token_urlsafe(32)``); the table stores only their SHA-256, so
a copy of the table opens no session (a plain hash is enough: the id has full entropy, nothing to brute
force). Every worker reads the same table, so logout and timeouts hold across workers at once. A session
ends at the first of: logout (``revoked_at``), ``idle`` without a request, ``absolute`` after login, or the
account being disabled or erased (the row goes with the account).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, update
from sqlmodel import Session, col, select

from broker.errors import BrokerError
from broker.identity.models import Account, PortalSession
from broker.timeutil import Clock, as_utc

# A request refreshes ``last_seen_at`` only when it is older than this, so reading pages does not turn
# every request into a write; idle timeouts are therefore accurate to this much.
TOUCH_EVERY = timedelta(seconds=60)


class NotAuthenticated(BrokerError):
    code, status, title = "unauthenticated", 401, "Not logged in"


def session_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def browser_family(user_agent: str | None) -> str | None:
    """A coarse browser family for the user's list of sessions; the full string is a fingerprint, not kept."""
    if not user_agent:
        return None
    for marker, family in (("Edg/", "Edge"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"),
                           ("Safari/", "Safari"), ("curl/", "curl")):
        if marker in user_agent:
            return family
    return "other"


@dataclass(frozen=True)
class Timeouts:
    idle: timedelta
    absolute: timedelta


@dataclass(frozen=True)
class Principal:
    """Who a valid session speaks for."""

    account_id: str
    role: str
    citizen_id: str | None
    session_hash: str
    method: str
    created_at: datetime


class SessionStore:
    def __init__(self, session: Session, clock: Clock, timeouts: Timeouts) -> None:
        self.session = session
        self.clock = clock
        self.timeouts = timeouts

    def open(self, account: Account, *, method: str, user_agent: str | None = None) -> str:
        """A new session for ``account``; returns the cookie value (shown once, never stored)."""
        token = secrets.token_urlsafe(32)
        now = self.clock.now()
        self.session.add(PortalSession(
            id_hash=session_hash(token), account_id=account.id, method=method,
            user_agent=browser_family(user_agent), created_at=now, last_seen_at=now,
            expires_at=now + self.timeouts.absolute,
        ))
        self.session.flush()
        return token

    def resolve(self, token: str | None) -> Principal | None:
        """The principal of a live session, refreshing its idle timer; None for anything else."""
        if not token:
            return None
        now = self.clock.now()
        row = self.session.exec(
            select(PortalSession, Account).join(Account, col(Account.id) == PortalSession.account_id)
            .where(PortalSession.id_hash == session_hash(token))
        ).first()
        if row is None:
            return None
        portal_session, account = row
        if (portal_session.revoked_at is not None or account.disabled_at is not None
                or as_utc(portal_session.expires_at) <= now
                or as_utc(portal_session.last_seen_at) + self.timeouts.idle <= now):
            return None
        if now - as_utc(portal_session.last_seen_at) >= TOUCH_EVERY:
            self.session.execute(update(PortalSession).where(col(PortalSession.id_hash) == portal_session.id_hash)
                                 .values(last_seen_at=now))
        return Principal(account_id=account.id, role=account.role, citizen_id=account.citizen_id,
                         session_hash=portal_session.id_hash, method=portal_session.method,
                         created_at=as_utc(portal_session.created_at))

    def revoke(self, token: str | None) -> None:
        if token:
            self._revoke(col(PortalSession.id_hash) == session_hash(token))

    def revoke_all(self, account_id: str) -> None:
        self._revoke(col(PortalSession.account_id) == account_id)

    def _revoke(self, where: ColumnElement[bool]) -> None:
        self.session.execute(update(PortalSession).where(where, col(PortalSession.revoked_at).is_(None))
                             .values(revoked_at=self.clock.now()))
