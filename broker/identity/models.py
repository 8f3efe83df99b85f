"""Tables of the identity area.

A citizen's direct identifiers (email, name) are stored only encrypted under the citizen's own data key,
which is itself wrapped by the master key; destroying the wrapped key (Art 17 erasure) makes them unreadable
everywhere at once, backups included. Outside this area citizens are known only by their pseudonym.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, DateTime, Index, LargeBinary, text
from sqlmodel import Field, SQLModel


def _utc(**kw: object) -> Column:
    return Column(DateTime(timezone=True), **kw)


class Citizen(SQLModel, table=True):
    __tablename__ = "citizen"

    id: str = Field(primary_key=True, max_length=36)
    pseudonym: str = Field(unique=True, index=True, max_length=64)
    email_index: str | None = Field(default=None, unique=True, max_length=64)
    email_ct: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    name_ct: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    wrapped_key: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    birth_date: date | None = None
    district: str | None = Field(default=None, max_length=64)
    locale: str = Field(default="fr", max_length=8)
    privacy_cap: float | None = None
    created_at: datetime = Field(sa_column=_utc(nullable=False))
    restricted_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    erased_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))


class Account(SQLModel, table=True):
    """Someone who logs in to the portal: a citizen, an auditor or an admin."""

    __tablename__ = "account"

    id: str = Field(primary_key=True, max_length=36)
    email_index: str = Field(unique=True, max_length=64)
    role: str = Field(max_length=16)
    password_hash: str | None = Field(default=None, max_length=255)
    citizen_id: str | None = Field(default=None, foreign_key="citizen.id", index=True, ondelete="CASCADE")
    created_at: datetime = Field(sa_column=_utc(nullable=False))
    disabled_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))


class PortalSession(SQLModel, table=True):
    """One logged-in browser. The cookie holds a random id; only its SHA-256 is stored, so a copy of this
    table (a backup, a leak) opens no session. Rows stay after logout or expiry, revoked, for audit."""

    __tablename__ = "portal_session"

    id_hash: str = Field(primary_key=True, max_length=64)
    account_id: str = Field(foreign_key="account.id", index=True, max_length=36, ondelete="CASCADE")
    method: str = Field(max_length=16)  # "password" or "oidc"
    user_agent: str | None = Field(default=None, max_length=32)  # browser family only, never the full string
    created_at: datetime = Field(sa_column=_utc(nullable=False))
    last_seen_at: datetime = Field(sa_column=_utc(nullable=False))
    expires_at: datetime = Field(sa_column=_utc(nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))


class LoginThrottle(SQLModel, table=True):
    """Failed logins per key (an account's blind email index, or a keyed hash of the client address) in a
    fixed window. In the database so that every worker counts the same failures."""

    __tablename__ = "login_throttle"

    key: str = Field(primary_key=True, max_length=80)
    window_start: datetime = Field(sa_column=_utc(nullable=False, index=True))
    failures: int = 0


class OidcLink(SQLModel, table=True):
    """The identity provider's subject for an account. The subject is stored as a keyed hash: it is a
    stable identifier of the person, and lookup is all the broker needs. Erasure deletes the account and
    with it the link."""

    __tablename__ = "oidc_link"

    subject_index: str = Field(primary_key=True, max_length=64)  # HMAC(pepper, issuer, sub)
    account_id: str = Field(foreign_key="account.id", index=True, max_length=36, ondelete="CASCADE")
    created_at: datetime = Field(sa_column=_utc(nullable=False))
    last_login_at: datetime = Field(sa_column=_utc(nullable=False))


class OidcLoginState(SQLModel, table=True):
    """An OIDC login in flight: state, nonce and PKCE verifier between the redirect and the callback.

    Keyed by a hash of ``state`` and bound to the browser that started the flow by a hash of a cookie value
    (RFC 6749 §10.12); the nonce and verifier are sealed under the master key. Used once, then deleted."""

    __tablename__ = "oidc_login_state"

    state_hash: str = Field(primary_key=True, max_length=64)
    binding_hash: str = Field(max_length=64)
    sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    expires_at: datetime = Field(sa_column=_utc(nullable=False, index=True))


class Guardianship(SQLModel, table=True):
    """One adult's parental responsibility for one minor, as the city established it (GDPR Art 8).

    Without this link any registered adult could consent for any child; the ledger refuses a guardian's
    consent unless a link between the two is in force. In force means not ended and the minor still under
    civil majority, computed from the birth date at each use, so no stored flag can go stale on a birthday.
    ``basis`` says how the city knows (``registry``: the civil registry or school records; ``staff``: a
    document checked at a desk) and ``established_by`` who recorded it, as an audit actor. Rows are ended,
    never deleted: the link is the evidence behind every consent a guardian gave.
    """

    __tablename__ = "guardianship"
    __table_args__ = (
        # At most one link in force per pair; ended links stay as history.
        Index("ux_guardianship_open_pair", "guardian_id", "minor_id", unique=True,
              sqlite_where=text("ended_at IS NULL"), postgresql_where=text("ended_at IS NULL")),
    )

    id: str = Field(primary_key=True, max_length=36)  # also the ward's opaque reference in the guardian's API
    guardian_id: str = Field(foreign_key="citizen.id", index=True, max_length=36)
    minor_id: str = Field(foreign_key="citizen.id", index=True, max_length=36)
    basis: str = Field(max_length=16)
    established_by: str = Field(max_length=80)
    since: datetime = Field(sa_column=_utc(nullable=False))
    ended_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    ended_by: str | None = Field(default=None, max_length=80)
