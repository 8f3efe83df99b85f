"""Storage limitation (GDPR Art 5(1)(e)) for the login machinery: rows that have done their job are deleted.

* ``login_throttle``: a window that has ended counts nothing any more;
* ``oidc_login_state``: a login in flight that was never completed, past its expiry;
* ``portal_session``: a session that ended (expired, or revoked at logout) more than ``keep_sessions`` ago. The
  access log already holds every login and logout; the row itself (account, browser family, times) is kept a
  while only so that someone looking into a fresh incident can still see which sessions were open.

Nothing here touches evidence: consent records, receipts' sources and the access log are never pruned.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_
from sqlmodel import Session, col

from broker.identity.models import OidcLoginState, PortalSession
from broker.identity.ratelimit import Limits, LoginThrottleService
from broker.keys import Secrets
from broker.timeutil import FixedClock

DEFAULT_KEEP_SESSIONS = timedelta(days=90)


@dataclass(frozen=True)
class Pruned:
    login_throttle: int
    oidc_login_state: int
    portal_session: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def prune(session: Session, secrets: Secrets, limits: Limits, now: datetime, *,
          keep_sessions: timedelta = DEFAULT_KEEP_SESSIONS) -> Pruned:
    """Delete what has served its purpose, in the caller's transaction; how many rows went, per table."""
    throttles = LoginThrottleService(session, secrets, FixedClock(now), limits).prune()
    states = session.execute(delete(OidcLoginState).where(col(OidcLoginState.expires_at) <= now)).rowcount
    ended_before = now - keep_sessions
    sessions = session.execute(delete(PortalSession).where(or_(
        col(PortalSession.expires_at) <= ended_before, col(PortalSession.revoked_at) <= ended_before))).rowcount
    return Pruned(login_throttle=throttles, oidc_login_state=states or 0, portal_session=sessions or 0)
