"""Tables of the consent ledger.

Records are append-only (the migration installs triggers refusing UPDATE and DELETE): every change of mind is
a new record pointing to the previous one, so the history is itself the proof of consent (Art 7(1)). The
current consent of a citizen for a purpose is the newest record of the pair (highest ``seq``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

from sqlalchemy import Column, DateTime, Index, Text
from sqlmodel import Field, SQLModel


class Notice(SQLModel, table=True):
    """The exact text a citizen was shown for one purpose version; records point to it by id and hash."""

    __tablename__ = "notice"

    id: str = Field(primary_key=True, max_length=160)  # "<purpose>@<version>"
    purpose_id: str = Field(max_length=64)
    purpose_version: int
    sha256: str = Field(max_length=64)
    body: str = Field(sa_column=Column(Text, nullable=False))  # canonical JSON (RFC 8785)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class ConsentRecord(SQLModel, table=True):
    __tablename__ = "consent_record"
    __table_args__ = (
        Index("ix_consent_subject_purpose_seq", "pseudonym", "purpose_id", "seq"),
        # The cohort of a purpose (broker.privacy.cohort): the newest record per citizen read in index order,
        # and on PostgreSQL the columns the cohort tests, so that no table row is read (index-only scans).
        Index("ix_consent_purpose_subject_seq", "purpose_id", "pseudonym", "seq",
              postgresql_include=["state", "purpose_version", "valid_until", "guardian_pseudonym", "consent_type"]),
    )

    seq: int | None = Field(default=None, primary_key=True)
    id: str = Field(unique=True, max_length=36)
    schema_version: str = Field(max_length=16)
    pseudonym: str = Field(max_length=64)
    purpose_id: str = Field(max_length=64, index=True)
    purpose_version: int
    state: str = Field(max_length=16)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    valid_from: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    valid_until: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    method: str = Field(max_length=16)
    expressed_by: str = Field(max_length=16)
    guardian_pseudonym: str | None = Field(default=None, max_length=64)
    consent_type: str = Field(max_length=16)
    notice_id: str = Field(foreign_key="notice.id", max_length=160)
    language: str = Field(max_length=8)
    jurisdiction: str = Field(max_length=8)
    previous_id: str | None = Field(default=None, max_length=36)
    evidence: str = Field(max_length=64)  # SHA-256 of the canonical receipt payload


class CurrentConsent(SQLModel, table=True):
    """The newest record of each (purpose, citizen) pair, with the citizen's birth date: what a cohort reads.

    A mirror, not evidence: database triggers (see the initial migration) write it in the same statement as
    every consent record, whoever inserts it (the ledger, the demo seeder, an import), and copy the birth date
    from ``citizen`` when either changes, so it cannot drift from the ledger and can be rebuilt from it at any
    time. It turns the cohort of a purpose from a ``max(seq)`` group-by over the purpose's whole history, joined
    to the whole citizen table for the age rule, into one range of the primary key (on SQLite a ``WITHOUT
    ROWID`` table, so the range holds every column the cohort tests; on PostgreSQL the migration adds an index
    ``ix_consent_current_cohort`` holding them, read by an index-only scan).
    """

    __tablename__ = "consent_current"
    __table_args__ = (
        Index("ix_consent_current_pseudonym", "pseudonym"),  # the birth-date trigger finds a citizen's rows
        {"sqlite_with_rowid": False},
    )

    purpose_id: str = Field(primary_key=True, max_length=64)
    pseudonym: str = Field(primary_key=True, max_length=64)
    seq: int
    state: str = Field(max_length=16)
    purpose_version: int
    valid_until: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    guardian_pseudonym: str | None = Field(default=None, max_length=64)
    consent_type: str = Field(max_length=16)
    birth_date: date | None = None


@dataclass(frozen=True)
class NewestRecord:
    """Where the columns of a pair's newest record are read from in a statement: ``consent_current`` itself,
    or a vault summary's copy of it (:class:`broker.vault.summaries.ConsentColumns`), so that the rules of
    who counts are written once (:meth:`broker.consent.ledger.ConsentLedger.counting`)."""

    pseudonym: Any
    #: None where the columns are those of one purpose already (a summary's copy).
    purpose_id: Any
    state: Any
    purpose_version: Any
    valid_until: Any
    guardian_pseudonym: Any
    consent_type: Any
    birth_date: Any

    @classmethod
    def of_mirror(cls) -> NewestRecord:
        table = CurrentConsent.__table__  # type: ignore[attr-defined]
        return cls(*(table.c[f.name] for f in fields(cls)))
