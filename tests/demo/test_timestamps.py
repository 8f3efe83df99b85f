"""The seeder's vectorised time helpers agree with the scalar functions the broker uses."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
from sqlalchemy import DateTime, create_engine

from broker.consent.ledger import add_months as ledger_add_months
from broker.demo.timestamps import add_months, ages_on, format_days, format_instants, from_us, to_us
from broker.identity.citizens import age_on

rng = np.random.default_rng(3)
EDGES = [datetime(2024, 1, 31, 23, 59, 59, 999_999, tzinfo=UTC), datetime(2024, 2, 29, 12, tzinfo=UTC),
         datetime(2023, 12, 31, tzinfo=UTC), datetime(1969, 12, 31, 23, 0, 1, 5, tzinfo=UTC)]
MOMENTS = EDGES + [datetime(1990, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(u))
                   for u in rng.integers(0, 40 * 365 * 86_400 * 10**6, size=500)]
US = np.array([to_us(m) for m in MOMENTS])


def test_instants_print_as_sqlalchemy_stores_them_on_sqlite() -> None:
    dialect = create_engine("sqlite://").dialect
    store = DateTime(timezone=True).dialect_impl(dialect).bind_processor(dialect)
    assert format_instants(US) == [store(m) for m in MOMENTS]
    assert [from_us(u) for u in US.tolist()] == MOMENTS


def test_instants_print_as_receipts_print_them() -> None:
    printed = format_instants(US, sep="T", suffix="Z")
    assert printed == [m.strftime("%Y-%m-%dT%H:%M:%S.%fZ") for m in MOMENTS]


def test_days_and_ages_match_the_scalar_functions() -> None:
    births = np.array([m.date() for m in MOMENTS], dtype="datetime64[D]")
    assert format_days(births) == [m.date().isoformat() for m in MOMENTS]
    for on in (date(2026, 3, 2), date(2028, 2, 29), date(2027, 2, 28)):
        assert ages_on(births, on).tolist() == [age_on(m.date(), on) for m in MOMENTS]


def test_add_months_matches_the_ledger() -> None:
    for months in (1, 6, 12, 24):
        assert add_months(US, months).tolist() == [to_us(ledger_add_months(m, months)) for m in MOMENTS]
