"""Tables of the identity area.

A citizen's direct identifiers (email, name) are stored only encrypted under the citizen's own data key,
which is itself wrapped by the master key; destroying the wrapped key (Art 17 erasure) makes them unreadable
everywhere at once, backups included. Outside this area citizens are known only by their pseudonym.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, DateTime, LargeBinary
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
