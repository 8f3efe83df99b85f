"""Tables of the privacy area: budget accounts, per-(purpose, dataset) counters and releases (DESIGN §4).

All ε is stored in integer micro-ε (:mod:`broker.privacy.epsilon`), so sums are exact.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, DateTime, Index, Text, text
from sqlmodel import Field, SQLModel

from broker.identity.models import Citizen


def _micro() -> Column:
    return Column(BigInteger, nullable=False, default=0)


class BudgetAccount(SQLModel, table=True):
    """One budget over one period: the shared account of a (purpose, dataset) has ``service_id = "*"``, each
    service's sub-account beneath it has the service's id. Charged only by conditional UPDATEs
    (:mod:`broker.privacy.budget`); never refunded."""

    __tablename__ = "budget_account"

    purpose_id: str = Field(primary_key=True, max_length=64)
    dataset_id: str = Field(primary_key=True, max_length=64)
    period: str = Field(primary_key=True, max_length=16)  # "2026", "2026-Q1" or "2026-03"
    service_id: str = Field(primary_key=True, max_length=64)
    cap_micro: int = Field(sa_column=_micro())
    spent_micro: int = Field(sa_column=_micro())
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class PrivacyCounter(SQLModel, table=True):
    """Cumulative ε and number of fresh releases of one (purpose, dataset), since the beginning.

    A citizen's privacy loss (and later their share of contributions) is a difference of these counters over
    their consent intervals, read from the counter value each release recorded: one write per release,
    none per citizen.
    """

    __tablename__ = "privacy_counter"

    purpose_id: str = Field(primary_key=True, max_length=64)
    dataset_id: str = Field(primary_key=True, max_length=64)
    epsilon_micro: int = Field(sa_column=_micro())
    releases: int = Field(sa_column=_micro())
    #: The instant the latest release counts from; releases are ordered by it (see broker.privacy.counters).
    last_released_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class Release(SQLModel, table=True):
    """One answered query. ``cache_key`` (spec, purpose version, period) lets an identical query be answered
    from here at no cost; ``cohort_size`` is exact and stays internal (it is never released)."""

    __tablename__ = "privacy_release"
    __table_args__ = (Index("ix_privacy_release_counter", "purpose_id", "dataset_id", "released_at",
                            "counter_epsilon_micro"),)

    id: str = Field(primary_key=True, max_length=36)  # the query_id given to the service
    cache_key: str = Field(unique=True, max_length=64)
    service_id: str = Field(max_length=64)
    purpose_id: str = Field(max_length=64)
    purpose_version: int
    dataset_id: str = Field(max_length=64)
    period: str = Field(max_length=16)
    spec: str = Field(sa_column=Column(Text, nullable=False))  # canonical JSON of the request
    epsilon_micro: int = Field(sa_column=_micro())
    results: str = Field(sa_column=Column(Text, nullable=False))  # canonical JSON of the released cells
    cohort_size: int
    audit_index: int
    released_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    #: The instant this release counts from, and the (purpose, dataset) counter just after it: personal loss
    #: is read as differences of these (broker.privacy.counters).
    counter_epsilon_micro: int = Field(sa_column=_micro())
    counter_releases: int = Field(sa_column=_micro())


# Two indexes on the citizen table serve privacy's per-query reads, which is why they are declared here:
# * the personal-cap shortcut asks for the smallest cap of anyone on every query (broker.privacy.caps);
# * the cohort takes away, from the purpose's current consents (broker.consent.models.CurrentConsent, which
#   also holds the birth dates the age rule reads), the citizens no processing may use, restricted or erased:
#   a few rows, read from a partial index of their own instead of joining every consent to the whole table.
_citizen = Citizen.__table__  # type: ignore[attr-defined]
_BLOCKED = "restricted_at IS NOT NULL OR erased_at IS NOT NULL"
citizen_privacy_cap_index = Index("ix_citizen_privacy_cap", _citizen.c.privacy_cap)
citizen_blocked_index = Index("ix_citizen_blocked", _citizen.c.pseudonym, sqlite_where=text(_BLOCKED),
                              postgresql_where=text(_BLOCKED))
