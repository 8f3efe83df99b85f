"""Password login for portal accounts (citizens, auditors, admins), and re-entering the password.

Each step runs in its own short transaction on the engine, for two reasons. A failed attempt must be counted
even though the request ends in an error (its transaction would roll back the count). And argon2 takes tens
of milliseconds on purpose: on SQLite every transaction holds the write lock (BEGIN IMMEDIATE), so the hash
is checked between transactions, never inside one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import Session, select

from broker.audit import AuditEvent, actions
from broker.audit import record as record_audit
from broker.audit.refusals import logged_since
from broker.db import session_scope
from broker.errors import BrokerError, Forbidden
from broker.identity.models import Account
from broker.identity.passwords import verify_password
from broker.identity.ratelimit import Limits, LoginThrottleService, TooManyLoginAttempts
from broker.identity.sessions import Principal, SessionStore, Timeouts
from broker.keys import Secrets
from broker.settings import Settings
from broker.timeutil import Clock

# An account without a password (created through the identity provider) proves itself again by a fresh
# provider login: erasure is then allowed for this long after it.
RECENT_LOGIN = timedelta(minutes=10)


class LoginFailed(BrokerError):
    # One message for an unknown email, a wrong password and a disabled account: no account enumeration.
    code, status, title = "login-failed", 401, "Login failed"


class LocalAccountsDisabled(BrokerError):
    code, status, title = "local-accounts-disabled", 403, "Password login is switched off"


class ReauthenticationFailed(Forbidden):
    code, title = "reauthentication-failed", "Password confirmation failed"


@dataclass(frozen=True)
class LoginConfig:
    local_accounts: bool
    limits: Limits
    timeouts: Timeouts

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginConfig:
        return cls(
            local_accounts=settings.local_accounts,
            limits=Limits(window=timedelta(minutes=settings.login_failure_window_minutes),
                          per_account=settings.login_max_failures_per_account,
                          per_address=settings.login_max_failures_per_address),
            timeouts=Timeouts(idle=timedelta(minutes=settings.session_idle_minutes),
                              absolute=timedelta(hours=settings.session_absolute_hours)),
        )


class PasswordLogin:
    def __init__(self, engine: Engine, secrets: Secrets, clock: Clock, config: LoginConfig) -> None:
        self.engine = engine
        self.secrets = secrets
        self.clock = clock
        self.config = config

    def login(self, email: str, password: str, *, address: str | None, user_agent: str | None,
              replacing: str | None = None) -> tuple[str, Account]:
        """Check the password and open a session; returns the new session's cookie value and the account.

        ``replacing`` is the session id the browser came with, if any: it is revoked and a new id issued, so
        an id planted before login (session fixation) never becomes a logged-in session.
        """
        if not self.config.local_accounts:
            raise LocalAccountsDisabled("Log in through the city's identity provider.")
        index = self.secrets.email_index(email)
        throttled: TooManyLoginAttempts | None = None
        with session_scope(self.engine) as session:
            account = session.exec(select(Account).where(Account.email_index == index)).first()
            try:
                self._throttle(session).check(index, address)
            except TooManyLoginAttempts as exc:
                throttled = exc
                self._audit_throttled(session, account, "password")
        if throttled is not None:
            raise throttled  # after its entry is committed
        ok = verify_password(account.password_hash if account else None, password)
        if account is None or not ok or account.disabled_at is not None:
            reason = "unknown-account" if account is None else "wrong-password" if not ok else "disabled"
            with session_scope(self.engine) as session:
                self._throttle(session).record_failure(index, address)
                self._audit(session, account, actions.LOGIN_FAILED, "password", reason=reason)
            # Raised after the count is committed, so the failure stays counted.
            raise LoginFailed("The email address or the password is not right.")
        with session_scope(self.engine) as session:
            self._throttle(session).record_success(index)
            store = SessionStore(session, self.clock, self.config.timeouts)
            store.revoke(replacing)
            token = store.open(account, method="password", user_agent=user_agent)
            self._audit(session, account, actions.LOGIN, "password")
            return token, account

    def confirm(self, principal: Principal, password: str | None, *, address: str | None) -> None:
        """Proof that the person at the keyboard is the account holder, before an irreversible act.

        Wrong passwords count against the same limits as logins, so a stolen session cannot be turned into a
        password-guessing oracle.
        """
        throttled: TooManyLoginAttempts | None = None
        with session_scope(self.engine) as session:
            account = session.get(Account, principal.account_id)
            if account is None:
                raise ReauthenticationFailed("This account no longer exists.")
            index = account.email_index  # the same counter as this account's logins
            try:
                self._throttle(session).check(index, address)
            except TooManyLoginAttempts as exc:
                throttled = exc
                self._audit_throttled(session, account, "reauthentication")
            stored = account.password_hash
        if throttled is not None:
            raise throttled
        if stored is None:
            fresh = self.clock.now() - principal.created_at <= RECENT_LOGIN
            if principal.method != "oidc" or not fresh:
                raise ReauthenticationFailed("Log in again through your identity provider, then confirm.")
            return
        if password and verify_password(stored, password):
            return
        with session_scope(self.engine) as session:
            self._throttle(session).record_failure(index, address)
            self._audit(session, session.get(Account, principal.account_id), actions.LOGIN_FAILED, "reauthentication",
                        reason="wrong-password")
        raise ReauthenticationFailed("The password is not right.")

    def logout(self, token: str | None) -> None:
        """End the session; a live one is logged (``logout``, by the account's actor), an unknown or ended one
        changes nothing and is not."""
        with session_scope(self.engine) as session:
            store = SessionStore(session, self.clock, self.config.timeouts)
            principal = store.resolve(token)
            store.revoke(token)
            if principal is not None:
                self._audit(session, session.get(Account, principal.account_id), actions.LOGOUT, principal.method)

    def _audit(self, session: Session, account: Account | None, action: str, method: str,
               reason: str | None = None) -> None:
        """A login or failed login, by pseudonymous actor: never the email typed (an unknown one is "anonymous")."""
        details = {"method": method} if account is None else {"method": method, "role": account.role}
        if reason is not None:
            details["reason"] = reason
        actor = actions.account_actor(session, account) if account is not None else actions.ANONYMOUS
        record_audit(session, AuditEvent(actor=actor, action=action, details=details), self.clock.now())

    def _audit_throttled(self, session: Session, account: Account | None, method: str) -> None:
        """A login refused by the throttle (429), logged once per actor and throttle window rather than once per
        attempt: refused attempts cost an attacker nothing, and each entry would stay in the log for good."""
        actor = actions.account_actor(session, account) if account is not None else actions.ANONYMOUS
        since = self.clock.now() - self.config.limits.window
        if not logged_since(session, action=actions.LOGIN_FAILED, actor=actor, since=since,
                            details={"method": method, "reason": "throttled"}):
            self._audit(session, account, actions.LOGIN_FAILED, method, reason="throttled")

    def _throttle(self, session: Session) -> LoginThrottleService:
        return LoginThrottleService(session, self.secrets, self.clock, self.config.limits)
