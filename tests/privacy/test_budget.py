"""Budget accounts on both databases: periods, both-or-neither charges, exact sums, caps from the policy."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from broker.db import session_scope
from broker.policy import Policy, Purpose
from broker.policy.schema import Budget
from broker.privacy.budget import SHARED, BudgetLedger, period_key
from broker.privacy.models import BudgetAccount

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def with_budget(purpose: Purpose, **budget: float | str) -> Purpose:
    values = {**purpose.budget.model_dump(), **budget}
    return purpose.model_copy(update={"budget": Budget.model_validate(values)})


@pytest.mark.parametrize(("period", "expected"), [("year", "2026"), ("quarter", "2026-Q1"), ("month", "2026-03")])
def test_period_keys(period: str, expected: str) -> None:
    assert period_key(period, NOW) == expected
    assert period_key("quarter", datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == "2026-Q4"


def spent(engine: Engine, purpose: Purpose, dataset: str) -> dict[str, int]:
    with session_scope(engine) as session:
        rows = session.exec(select(BudgetAccount).where(BudgetAccount.purpose_id == purpose.id,
                                                        BudgetAccount.dataset_id == dataset)).all()
        return {row.service_id: row.spent_micro for row in rows}


def test_charges_sum_exactly_and_stop_at_the_service_cap(engine: Engine, policy: Policy) -> None:
    purpose = with_budget(policy.purpose("air-quality-study"), per_query_epsilon=0.3,  # type: ignore[arg-type]
                          per_service_epsilon=0.7, total_epsilon=1.0)
    charges = [100_000, 300_000, 1, 299_999]  # 0.7 exactly, in awkward pieces
    with session_scope(engine) as session:
        ledger = BudgetLedger(session, policy)
        for micro in charges:
            assert ledger.charge("svc-a", purpose, "air-exposure", micro, NOW) is not None
        assert ledger.charge("svc-a", purpose, "air-exposure", 1, NOW) is None  # the service cap binds
        after = ledger.charge("svc-b", purpose, "air-exposure", 300_000, NOW)
        assert after is not None and after.shared.remaining_micro == 0
        assert ledger.charge("svc-b", purpose, "air-exposure", 1, NOW) is None  # now the shared cap binds
    assert spent(engine, purpose, "air-exposure") == {SHARED: 1_000_000, "svc-a": 700_000, "svc-b": 300_000}


def test_a_refused_charge_leaves_both_accounts_untouched(engine: Engine, policy: Policy) -> None:
    purpose = with_budget(policy.purpose("air-quality-study"), per_query_epsilon=0.5,  # type: ignore[arg-type]
                          per_service_epsilon=1.0, total_epsilon=1.0)
    with session_scope(engine) as session:
        ledger = BudgetLedger(session, policy)
        assert ledger.charge("svc-a", purpose, "air-exposure", 600_000, NOW)
        # The service account would allow 0.5 more, the shared one not: neither is charged.
        assert ledger.charge("svc-b", purpose, "air-exposure", 500_000, NOW) is None
    assert spent(engine, purpose, "air-exposure") == {SHARED: 600_000, "svc-a": 600_000}  # svc-b: not even created


def test_a_lowered_cap_binds_at_once_and_periods_are_apart(engine: Engine, policy: Policy) -> None:
    purpose = with_budget(policy.purpose("air-quality-study"), period="month")  # type: ignore[arg-type]
    with session_scope(engine) as session:
        ledger = BudgetLedger(session, policy)
        assert ledger.charge("svc-a", purpose, "air-exposure", 400_000, NOW)
        lowered = with_budget(purpose, per_query_epsilon=0.25, per_service_epsilon=0.5, total_epsilon=0.5)
        assert ledger.charge("svc-a", lowered, "air-exposure", 200_000, NOW) is None
        assert ledger.accounts("svc-a", lowered, "air-exposure", NOW).remaining_micro == 100_000
        april = datetime(2026, 4, 1, tzinfo=UTC)
        assert ledger.charge("svc-a", lowered, "air-exposure", 200_000, april) is not None
        assert ledger.spent_in_year(2026) == 600_000
        assert ledger.spent_in_year(2025) == 0


def test_accounts_read_before_any_charge_show_the_full_caps(engine: Engine, policy: Policy) -> None:
    purpose = policy.purpose("air-quality-study")
    assert purpose is not None
    with session_scope(engine) as session:
        accounts = BudgetLedger(session, policy).accounts("environment-health", purpose, "air-exposure", NOW)
    assert accounts.shared.remaining_micro == 4_000_000 and accounts.service.remaining_micro == 3_000_000
    assert accounts.remaining_micro == 3_000_000 and accounts.shared.period == "2026"
