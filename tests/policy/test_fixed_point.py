"""Declared values (bounds, quantile candidates) become exact fixed-point integers."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from broker.policy.schema import Field, FieldType, Text

FIELD = Field(name="pm25", type=FieldType.decimal, description=Text(fr="PM2,5", en="PM2.5"), scale=2,
              lower=0, upper=150)


@given(st.decimals(min_value=-10**9, max_value=10**9, places=2, allow_nan=False, allow_infinity=False))
def test_a_value_with_at_most_scale_places_converts_exactly(value: Decimal) -> None:
    assert FIELD.to_fixed(float(value)) == int(value * 100)
    assert FIELD.to_fixed(value) == int(value * 100)


def test_extra_places_round_half_even() -> None:
    assert FIELD.to_fixed(0.1 + 0.2) == 30  # 0.30000000000000004
    assert FIELD.to_fixed(Decimal("1.005")) == 100 and FIELD.to_fixed(Decimal("1.015")) == 102
