"""Login rate limiting per account and per client address, shared by every worker through the database.

A fixed window per key: at most ``max_failures`` failed logins in ``window``; once reached, the key is
refused until its window ends, without even checking the password (which also spares the argon2 work to an
attacker). Keys never hold an email or an address in clear: the account key is the account's blind email
index (so an unknown email is throttled exactly like a known one and the limit reveals nothing), the address
key a keyed hash of the address.

Counting is one ``INSERT .. ON CONFLICT DO UPDATE`` per key (SQLite >= 3.24 and PostgreSQL alike): the read
and the increment cannot interleave, so concurrent failures from many workers are all counted. Two attempts
racing past the check may both be verified, so a burst can exceed the limit by the number of workers; every
failure still counts, and the next attempt is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from broker.errors import BrokerError
from broker.identity.models import LoginThrottle
from broker.keys import Secrets
from broker.timeutil import Clock, as_utc


class TooManyLoginAttempts(BrokerError):
    code, status, title = "too-many-login-attempts", 429, "Too many login attempts"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many failed logins; try again in {retry_after} seconds.")
        self.headers = {"Retry-After": str(retry_after)}


@dataclass(frozen=True)
class Limits:
    window: timedelta
    per_account: int
    per_address: int


class LoginThrottleService:
    def __init__(self, session: Session, secrets: Secrets, clock: Clock, limits: Limits) -> None:
        self.session = session
        self.secrets = secrets
        self.clock = clock
        self.limits = limits

    @staticmethod
    def account_key(email_index: str) -> str:
        return "account:" + email_index

    def address_key(self, address: str | None) -> str:
        digest = hmac.new(self.secrets.pepper, b"login-address:" + (address or "unknown").encode(), hashlib.sha256)
        return "address:" + digest.hexdigest()

    def check(self, email_index: str, address: str | None) -> None:
        """Refuse (429) while either key has used up its failures in the current window.

        ``email_index`` is :meth:`Secrets.email_index` of the email typed (or the account's stored index).
        """
        now = self.clock.now()
        waits = [self._blocked_for(self.account_key(email_index), self.limits.per_account, now),
                 self._blocked_for(self.address_key(address), self.limits.per_address, now)]
        wait = max(waits)
        if wait > 0:
            raise TooManyLoginAttempts(wait)

    def record_failure(self, email_index: str, address: str | None) -> None:
        now = self.clock.now()
        for key in (self.account_key(email_index), self.address_key(address)):
            self._count(key, now)

    def record_success(self, email_index: str) -> None:
        """A right password clears the account's count; the address keeps its own (one good account must not
        let an address go on guessing others)."""
        self.session.execute(delete(LoginThrottle).where(col(LoginThrottle.key) == self.account_key(email_index)))

    def prune(self) -> int:
        """Delete rows whose window has ended (housekeeping; they would be reset on next use anyway)."""
        cutoff = self.clock.now() - self.limits.window
        result = self.session.execute(delete(LoginThrottle).where(col(LoginThrottle.window_start) <= cutoff))
        return result.rowcount or 0

    def _blocked_for(self, key: str, limit: int, now: datetime) -> int:
        row = self.session.exec(
            select(LoginThrottle.failures, LoginThrottle.window_start).where(LoginThrottle.key == key)).first()
        if row is None or row[0] < limit:
            return 0
        ends = as_utc(row[1]) + self.limits.window
        return math.ceil((ends - now).total_seconds()) if ends > now else 0

    def _count(self, key: str, now: datetime) -> None:
        table = LoginThrottle.__table__
        stale = table.c.window_start <= now - self.limits.window
        insert = pg_insert if self.session.get_bind().dialect.name == "postgresql" else sqlite_insert
        statement = insert(table).values(key=key, window_start=now, failures=1).on_conflict_do_update(
            index_elements=[table.c.key],
            set_={"failures": case((stale, 1), else_=table.c.failures + 1),
                  "window_start": case((stale, now), else_=table.c.window_start)},
        )
        self.session.execute(statement)
