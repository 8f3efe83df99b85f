"""Tables of the exchange area. Only outcome reports are stored: contributions and earnings are derived at read
time from consent records and the per-(purpose, dataset) release counters (:mod:`broker.privacy.counters`).

Amounts are kept as decimal strings, not floats or SQL NUMERIC: SQLite has no exact decimal type, and an
outcome's value must read back exactly as the service sent it on both databases.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, Date, DateTime, Index, Text
from sqlmodel import Field, SQLModel


class OutcomeReport(SQLModel, table=True):
    """One outcome a service reports for one of its purposes (``POST /v1/outcomes``)."""

    __tablename__ = "outcome_report"
    __table_args__ = (Index("ix_outcome_report_purpose", "purpose_id", "period_end"),)

    id: str = Field(primary_key=True, max_length=36)
    service_id: str = Field(max_length=64)
    purpose_id: str = Field(max_length=64)
    metric: str = Field(max_length=200)
    value: str = Field(max_length=40)  # exact decimal, as sent
    baseline: str = Field(max_length=40)  # exact decimal, as sent
    unit: str = Field(max_length=32)
    period_start: date = Field(sa_column=Column(Date, nullable=False))
    period_end: date = Field(sa_column=Column(Date, nullable=False))
    evidence_url: str = Field(max_length=2000)
    domain: str = Field(max_length=48)
    reported_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    audit_index: int
    note: str | None = Field(default=None, sa_column=Column(Text))
