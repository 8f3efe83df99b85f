"""Tables of the access log. Entries hold pseudonyms and technical fields only: no personal data, no secrets.

* ``audit_entry``: one row per entry, ``seq`` gap-free from 0 (the leaf index in the Merkle tree). ``body`` is
  the entry's canonical JSON (RFC 8785), the exact bytes the leaf hash covers; the other columns repeat a few
  of its fields so that auditors can filter, and ``audit verify`` checks that they agree with the body.
* ``audit_node``: the hash of every perfect subtree of two leaves or more, keyed by the order in which the
  nodes complete (:func:`broker.audit.tree.node_id`), so proofs read O(log n) rows and never rehash the log.
* ``audit_checkpoint``: every signed checkpoint (compact JWS, ES256) with its decoded fields.
* ``audit_state``: two counter rows. ``sequencer`` holds the next ``seq`` and the time of the last entry, and
  is locked by every append until its transaction ends: commit order is ``seq`` order, and a rolled-back
  append gives its number back, so the sequence has no gaps on either database. ``integrator`` holds the size
  of the tree folded so far: the lock row of the one integrator at work (with an advisory lock on PostgreSQL).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, DateTime, Index, LargeBinary, Text
from sqlmodel import Field, SQLModel


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_entry"
    __table_args__ = (Index("ix_audit_entry_purpose_seq", "purpose", "seq"),)

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, index=True))
    actor: str = Field(max_length=128, index=True)  # "service:<id>", "citizen:<pseudonym>", "staff:<account>", ...
    action: str = Field(max_length=64, index=True)
    purpose: str | None = Field(default=None, max_length=64)
    dataset: str | None = Field(default=None, max_length=64)
    decision: str | None = Field(default=None, max_length=16)  # allow | deny
    subject: str | None = Field(default=None, max_length=64, index=True)  # a citizen's pseudonym
    leaf_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    body: str = Field(sa_column=Column(Text, nullable=False))  # canonical JSON (RFC 8785) of the whole entry


class AuditNode(SQLModel, table=True):
    __tablename__ = "audit_node"

    id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class AuditCheckpoint(SQLModel, table=True):
    __tablename__ = "audit_checkpoint"

    tree_size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    root_hash: str = Field(max_length=64)
    timestamp: str = Field(max_length=32)  # as signed: RFC 3339, UTC, microseconds
    kid: str = Field(max_length=64)
    jws: str = Field(sa_column=Column(Text, nullable=False))


class AuditState(SQLModel, table=True):
    __tablename__ = "audit_state"

    name: str = Field(primary_key=True, max_length=16)  # "sequencer" | "integrator"
    position: int = Field(sa_column=Column(BigInteger, nullable=False))
    moment_us: int = Field(sa_column=Column(BigInteger, nullable=False))  # microseconds since the epoch, UTC
