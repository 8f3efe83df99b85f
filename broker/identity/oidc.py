"""Login through the city's OpenID Connect provider (a Keycloak realm, a FranceConnect-style provider).

OpenID Connect Core 1.0 (https://openid.net/specs/openid-connect-core-1_0.html), Authorization Code flow,
with PKCE S256 (RFC 7636) and a nonce; the provider's metadata comes from discovery (OpenID Connect
Discovery 1.0 §4), and its issuer must be the configured one. authlib's Starlette client does the protocol:
authorization URL, code exchange with ``client_secret_basic``, ID token signature and claims.

authlib's Starlette client would keep state, nonce and verifier in ``request.session`` (a signed cookie,
through Starlette's SessionMiddleware). We keep them in the database instead (``OidcLoginState``), sealed,
bound to the browser by a random cookie value, usable once, for ten minutes: every worker can finish a
login another one started, no second session mechanism beside the portal's own, and nothing reusable in a
cookie.

The provider's ``sub`` is linked to a portal account (``OidcLink``, a keyed hash of issuer and subject). On a
first login the account is found by the provider's *verified* email (an existing citizen is linked, so they
keep their consents), or a citizen and account are created from the ID token's claims.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import anyio.to_thread
import httpx2
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.starlette_client import OAuth
from joserfc.errors import JoseError
from sqlalchemy import Engine, delete
from sqlmodel import Session, col, select

from broker.audit import AuditEvent, actions
from broker.audit import record as record_audit
from broker.db import session_scope
from broker.errors import BrokerError
from broker.identity.accounts import AccountService, Role
from broker.identity.citizens import CitizenService
from broker.identity.models import Account, OidcLink, OidcLoginState
from broker.identity.sessions import SessionStore, Timeouts
from broker.keys import Secrets
from broker.settings import Settings
from broker.timeutil import Clock, as_utc

FLOW_LIFETIME = timedelta(minutes=10)
CALLBACK_PATH = "/login/oidc/callback"
LOCALES = ("fr", "en")


class OidcLoginFailed(BrokerError):
    code, status, title = "oidc-login-failed", 400, "Login through the identity provider failed"

    def __init__(self, detail: str, *, reason: str, account_id: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason  # for the access log: one of the ``login.failed`` reasons (broker.audit.actions)
        self.account_id = account_id  # the account the login was for, when the provider's answer named one


class OidcProviderUnavailable(BrokerError):
    code, status, title = "oidc-provider-unavailable", 503, "Identity provider unavailable"


class OidcNotConfigured(BrokerError):
    code, status, title = "oidc-not-configured", 404, "No identity provider configured"


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    client_id: str
    client_secret: str
    scopes: str
    redirect_uri: str

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcConfig | None:
        if not settings.oidc_issuer or not settings.oidc_client_id or settings.oidc_client_secret is None:
            return None  # Settings refuses an issuer without client credentials
        return cls(issuer=settings.oidc_issuer.rstrip("/"), client_id=settings.oidc_client_id,
                   client_secret=settings.oidc_client_secret.get_secret_value(), scopes=settings.oidc_scopes,
                   redirect_uri=settings.issuer.rstrip("/") + CALLBACK_PATH)


@dataclass(frozen=True)
class OidcStart:
    url: str  # where to send the browser
    binding: str  # the cookie value that ties the callback to this browser


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class OidcLogin:
    def __init__(self, config: OidcConfig, engine: Engine, secrets_: Secrets, clock: Clock,
                 timeouts: Timeouts) -> None:
        self.config = config
        self.engine = engine
        self.secrets = secrets_
        self.clock = clock
        self.timeouts = timeouts
        self.client = OAuth().register(
            name="city",
            client_id=config.client_id,
            client_secret=config.client_secret,
            server_metadata_url=config.issuer + "/.well-known/openid-configuration",
            client_kwargs={"scope": config.scopes, "code_challenge_method": "S256", "timeout": 10.0},
        )

    async def start(self, next_path: str) -> OidcStart:
        """The provider's authorization URL for a new login, its state saved for the callback."""
        try:
            await self._metadata()
            flow = await self.client.create_authorization_url(self.config.redirect_uri)
        except (AuthlibBaseError, httpx2.HTTPError, ValueError) as exc:
            raise OidcProviderUnavailable("The identity provider cannot be reached; try again later.") from exc
        binding = secrets.token_urlsafe(32)
        data = {"nonce": flow["nonce"], "code_verifier": flow["code_verifier"], "next": next_path}
        await anyio.to_thread.run_sync(self._save, flow["state"], binding, data)
        return OidcStart(url=flow["url"], binding=binding)

    async def finish(self, *, state: str | None, code: str | None, error: str | None, binding: str | None,
                     user_agent: str | None, replacing: str | None) -> tuple[str, str]:
        """Exchange the code, check the ID token, sign in; returns the session cookie value and where to go."""
        # The state is consumed first, whatever follows: a state is good for one callback only.
        data = await anyio.to_thread.run_sync(self._take, state, binding)
        if data is None:
            # Not logged: a callback that matches no login begun here names no one, and anyone could send such
            # callbacks by the million to fill a log that keeps everything for good.
            raise OidcLoginFailed("This login link is unknown, expired or from another browser; start again.",
                                  reason="unknown-state")
        try:
            session_token = await self._complete(data, code, error, user_agent, replacing)
        except OidcLoginFailed as exc:  # a login begun here that failed: its own entry, the error unchanged
            await anyio.to_thread.run_sync(self._audit_failure, exc)
            raise
        return session_token, data["next"]

    async def _complete(self, data: dict[str, str], code: str | None, error: str | None, user_agent: str | None,
                        replacing: str | None) -> str:
        if error or not code:
            raise OidcLoginFailed("The identity provider did not complete the login.", reason="provider-refused")
        try:
            metadata = await self._metadata()
            token = await self.client.fetch_access_token(
                code=code, redirect_uri=self.config.redirect_uri, code_verifier=data["code_verifier"])
            claims = await self.client.parse_id_token(token, nonce=data["nonce"], claims_options={
                "iss": {"essential": True, "value": metadata["issuer"]},
                "aud": {"essential": True, "value": self.config.client_id},
                "sub": {"essential": True},
            })
        except (AuthlibBaseError, JoseError, httpx2.HTTPError, KeyError, ValueError) as exc:
            raise OidcLoginFailed("The identity provider's answer could not be verified.",
                                  reason="unverified-answer") from exc
        if not claims:
            raise OidcLoginFailed("The identity provider returned no ID token.", reason="no-id-token")
        return await anyio.to_thread.run_sync(self._sign_in, dict(claims), user_agent, replacing)

    # -- internals ----------------------------------------------------------------------------------------
    async def _metadata(self) -> dict[str, Any]:
        metadata = await self.client.load_server_metadata()
        if str(metadata.get("issuer", "")).rstrip("/") != self.config.issuer:
            # OIDC Discovery §4.3: the metadata must be about the issuer we were configured with.
            raise ValueError("the provider's metadata names another issuer")
        return metadata

    def _save(self, state: str, binding: str, data: dict[str, str]) -> None:
        now = self.clock.now()
        state_hash = _digest(state)
        with session_scope(self.engine) as session:
            session.execute(delete(OidcLoginState).where(col(OidcLoginState.expires_at) <= now))
            session.add(OidcLoginState(
                state_hash=state_hash, binding_hash=_digest(binding), expires_at=now + FLOW_LIFETIME,
                sealed=self.secrets.seal(json.dumps(data).encode(), aad=b"oidc-state:" + state_hash.encode()),
            ))

    def _take(self, state: str | None, binding: str | None) -> dict[str, str] | None:
        if not state or not binding:
            return None
        state_hash = _digest(state)
        with session_scope(self.engine) as session:
            row = session.get(OidcLoginState, state_hash)
            if row is None:
                return None
            session.delete(row)
            fresh = as_utc(row.expires_at) > self.clock.now()
            same_browser = hmac.compare_digest(row.binding_hash, _digest(binding))
            sealed = row.sealed
        if not (fresh and same_browser):
            return None
        return json.loads(self.secrets.open(sealed, aad=b"oidc-state:" + state_hash.encode()))

    def _subject_index(self, subject: str) -> str:
        message = b"oidc-subject:" + self.config.issuer.encode() + b"\x00" + subject.encode()
        return hmac.new(self.secrets.pepper, message, hashlib.sha256).hexdigest()

    def _sign_in(self, claims: dict[str, Any], user_agent: str | None, replacing: str | None) -> str:
        now = self.clock.now()
        with session_scope(self.engine) as session:
            index = self._subject_index(str(claims["sub"]))
            link = session.get(OidcLink, index)
            if link is not None:
                account = session.get(Account, link.account_id)
                link.last_login_at = now
                session.add(link)
            else:
                account = self._first_login_account(session, claims, now)
                session.add(OidcLink(subject_index=index, account_id=account.id, created_at=now,
                                     last_login_at=now))
            if account is None or account.disabled_at is not None:
                raise OidcLoginFailed("This account cannot log in.", reason="disabled",
                                      account_id=account.id if account is not None else None)
            store = SessionStore(session, self.clock, self.timeouts)
            store.revoke(replacing)  # no session fixation: a new id at every login
            token = store.open(account, method="oidc", user_agent=user_agent)
            record_audit(session, AuditEvent(actor=actions.account_actor(session, account), action=actions.LOGIN,
                                             details={"method": "oidc", "role": account.role}), now)
            return token

    def _audit_failure(self, failure: OidcLoginFailed) -> None:
        """``login.failed`` in a transaction of its own (the sign-in's, if any, rolled back): by the account's
        actor when the provider's answer named an account, else ``anonymous``; never the provider's subject,
        the email it sent or the address."""
        with session_scope(self.engine) as session:
            account = session.get(Account, failure.account_id) if failure.account_id else None
            details = {"method": "oidc", "reason": failure.reason}
            if account is not None:
                details["role"] = account.role
            actor = actions.account_actor(session, account) if account is not None else actions.ANONYMOUS
            record_audit(session, AuditEvent(actor=actor, action=actions.LOGIN_FAILED, details=details),
                         self.clock.now())

    def _first_login_account(self, session: Session, claims: dict[str, Any], now: datetime) -> Account:
        email = claims.get("email")
        if not isinstance(email, str) or not email or claims.get("email_verified") not in (True, "true"):
            # Linking by an unverified email would let anyone who types a citizen's address take over their
            # account; creating one would squat the address. Either way, refuse.
            raise OidcLoginFailed("The identity provider did not share a verified email address.",
                                  reason="unverified-email")
        index = self.secrets.email_index(email)
        account = session.exec(select(Account).where(Account.email_index == index)).first()
        if account is not None:
            if account.role != Role.citizen.value:
                raise OidcLoginFailed("Staff accounts log in with their password.", reason="staff-account",
                                      account_id=account.id)
            return account
        citizens = CitizenService(session, self.secrets)
        citizen = citizens.by_email(email)
        if citizen is None:
            locale = claims.get("locale")
            citizen = citizens.register(
                email=email, name=_name(claims), birth_date=_birth_date(claims.get("birthdate")), district=None,
                locale=locale if locale in LOCALES else LOCALES[0], now=now)
        return AccountService(session, self.secrets).create(email=email, password=None, role=Role.citizen,
                                                            now=now, citizen_id=citizen.id)


def _name(claims: dict[str, Any]) -> str:
    if isinstance(claims.get("name"), str):
        return claims["name"]
    parts = [claims.get("given_name"), claims.get("family_name")]
    return " ".join(p for p in parts if isinstance(p, str))


def _birth_date(value: Any) -> date | None:
    """OIDC ``birthdate`` is ``YYYY-MM-DD``; providers send ``0000`` parts when unknown, which we drop."""
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
