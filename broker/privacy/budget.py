"""Budget accounts: check and charge ε before any data is touched, safely across workers and processes.

Two accounts per query and period, both from policy (DESIGN §4): the (purpose, dataset) account shared by all
services, capped at ``budget.total_epsilon``, and the (service, purpose, dataset) account beneath it, capped
at ``budget.per_service_epsilon``. Pure ε-DP with sequential composition, so spending is a sum.

:meth:`BudgetLedger.charge` is two conditional UPDATEs inside one SAVEPOINT of the query's transaction::

    UPDATE budget_account SET spent_micro = spent_micro + :e WHERE <key> AND spent_micro + :e <= :cap

Each must touch exactly one row, else the savepoint rolls back and nothing is spent. The UPDATE takes the row
lock (PostgreSQL) or runs under SQLite's ``BEGIN IMMEDIATE`` write lock, and re-evaluates its condition on the
committed value, so concurrent charges serialise on the account and can never overspend; the check and the
charge are one statement, so there is no window between them. Rows are created on first use with
``INSERT … ON CONFLICT DO NOTHING``, which is race-safe on both databases. The cap compared is the current
policy's, so a lowered cap takes effect at once. Nothing here ever gives ε back: once the query's transaction
commits, its noise has been drawn and released.

OpenDP's in-memory privacy filter is deliberately not used: it is per process, lost on restart, and disables
itself after one refusal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from broker.policy.schema import Policy, Purpose
from broker.privacy.epsilon import from_micro, to_micro
from broker.privacy.models import BudgetAccount
from broker.timeutil import as_utc

SHARED = "*"


def period_key(period: str, at: datetime) -> str:
    """The budget period containing ``at`` (UTC): "2026" (year), "2026-Q1" (quarter) or "2026-03" (month)."""
    moment = as_utc(at)
    if period == "year":
        return f"{moment.year:04d}"
    if period == "quarter":
        return f"{moment.year:04d}-Q{(moment.month - 1) // 3 + 1}"
    if period == "month":
        return f"{moment.year:04d}-{moment.month:02d}"
    raise ValueError(f"unknown budget period {period!r}")


@dataclass(frozen=True)
class Account:
    purpose_id: str
    dataset_id: str
    period: str
    service_id: str
    cap_micro: int
    spent_micro: int

    @property
    def remaining_micro(self) -> int:
        return max(self.cap_micro - self.spent_micro, 0)

    def as_json(self) -> dict[str, float]:
        return {"cap": from_micro(self.cap_micro), "spent": from_micro(self.spent_micro),
                "remaining": from_micro(self.remaining_micro)}


@dataclass(frozen=True)
class Accounts:
    """The shared account of a (purpose, dataset, period) and one service's account beneath it."""

    shared: Account
    service: Account

    @property
    def remaining_micro(self) -> int:
        return min(self.shared.remaining_micro, self.service.remaining_micro)


def cap_of(purpose: Purpose, service_id: str) -> int:
    """The cap in micro-ε of an account: the purpose's total for the shared one, else the per-service cap."""
    budget = purpose.budget
    return to_micro(budget.total_epsilon if service_id == SHARED else budget.per_service_epsilon)


class _Refused(Exception):
    """Raised inside the savepoint to roll back a half-done charge."""


class BudgetLedger:
    def __init__(self, session: Session, policy: Policy) -> None:
        self.session = session
        self.policy = policy

    def accounts(self, service_id: str, purpose: Purpose, dataset_id: str, at: datetime) -> Accounts:
        """The two accounts as they stand (a row not yet created has spent nothing), without locking."""
        period = period_key(purpose.budget.period, at)
        rows = {row.service_id: row for row in self.session.exec(select(BudgetAccount).where(
            BudgetAccount.purpose_id == purpose.id, BudgetAccount.dataset_id == dataset_id,
            BudgetAccount.period == period, col(BudgetAccount.service_id).in_([SHARED, service_id])))}

        def account(who: str) -> Account:
            row = rows.get(who)
            return Account(purpose.id, dataset_id, period, who, cap_of(purpose, who),
                           row.spent_micro if row is not None else 0)

        return Accounts(shared=account(SHARED), service=account(service_id))

    def charge(self, service_id: str, purpose: Purpose, dataset_id: str, epsilon_micro: int,
               at: datetime) -> Accounts | None:
        """Spend ``epsilon_micro`` on both accounts, or on neither (None) if either would exceed its cap."""
        period = period_key(purpose.budget.period, at)
        try:
            with self.session.begin_nested():
                for who in (SHARED, service_id):
                    self._ensure(purpose.id, dataset_id, period, who, cap_of(purpose, who), at)
                    spent = self.session.execute(
                        update(BudgetAccount)
                        .where(col(BudgetAccount.purpose_id) == purpose.id,
                               col(BudgetAccount.dataset_id) == dataset_id,
                               col(BudgetAccount.period) == period, col(BudgetAccount.service_id) == who,
                               col(BudgetAccount.spent_micro) + epsilon_micro <= cap_of(purpose, who))
                        .values(spent_micro=col(BudgetAccount.spent_micro) + epsilon_micro,
                                cap_micro=cap_of(purpose, who), updated_at=at)
                        .execution_options(synchronize_session=False))
                    if spent.rowcount != 1:  # type: ignore[attr-defined]
                        raise _Refused
        except _Refused:
            return None
        return self.accounts(service_id, purpose, dataset_id, at)

    def spent_in_year(self, year: int) -> int:
        """Micro-ε of every fresh release this calendar year, across all purposes and datasets: the sum of the
        shared accounts whose period lies in the year (month, quarter and year keys all start with it)."""
        total = self.session.exec(select(func.coalesce(func.sum(BudgetAccount.spent_micro), 0)).where(
            BudgetAccount.service_id == SHARED, col(BudgetAccount.period).startswith(f"{year:04d}"))).one()
        return int(total)

    def for_service(self, service_id: str, purposes: Iterable[Purpose], at: datetime) -> list[Accounts]:
        """This period's accounts of every (purpose, dataset) the service may query."""
        return [self.accounts(service_id, p, use.dataset, at) for p in purposes for use in p.datasets]

    # -- internals ----------------------------------------------------------------------------------------
    def _ensure(self, purpose_id: str, dataset_id: str, period: str, service_id: str, cap: int,
                at: datetime) -> None:
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self.session.execute(insert(BudgetAccount).values(
            purpose_id=purpose_id, dataset_id=dataset_id, period=period, service_id=service_id, cap_micro=cap,
            spent_micro=0, updated_at=at).on_conflict_do_nothing())
