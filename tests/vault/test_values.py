"""Values of a batch: decimal → fixed point exact for every value the scale can hold and a refusal for any
other; JSON parsed without losing digits; the content hash behind idempotent batch ids."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.keys import Secrets
from broker.vault.ingest import (
    BIGINT_MAX,
    MalformedBatch,
    OutOfRange,
    TooManyPlaces,
    content_hash,
    from_fixed,
    parse_body,
    to_fixed,
)

scales = st.integers(min_value=0, max_value=6)
# Values whose fixed-point form fits a BIGINT at any scale up to 6.
coefficients = st.integers(min_value=-(10**12), max_value=10**12)


@given(coefficients, scales, st.integers(min_value=0, max_value=6), st.integers(min_value=0, max_value=4))
def test_a_value_with_at_most_scale_places_round_trips_exactly(coefficient: int, scale: int, places: int,
                                                              trailing_zeros: int) -> None:
    places = min(places, scale)
    # Written with extra trailing zeros, e.g. 1.2300 at scale 2: still exactly representable.
    value = Decimal(coefficient * 10**trailing_zeros).scaleb(-(places + trailing_zeros))
    fixed = to_fixed(value, scale)
    assert fixed == coefficient * 10 ** (scale - places)
    assert from_fixed(fixed, scale) == value


@given(st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-(10**9), max_value=10**9))
def test_any_decimal_at_scale_two_is_exact(value: Decimal) -> None:
    fixed = to_fixed(value, 2)
    assert Decimal(fixed) == value * 100
    assert from_fixed(fixed, 2) == value


@given(coefficients.filter(lambda c: c % 10 != 0), scales, st.integers(min_value=1, max_value=30))
def test_more_places_than_the_scale_are_refused(coefficient: int, scale: int, extra: int) -> None:
    value = Decimal(coefficient).scaleb(-(scale + extra))  # its last digit sits past the scale
    with pytest.raises(TooManyPlaces):
        to_fixed(value, scale)


def test_classic_float_traps_are_exact() -> None:
    assert to_fixed(Decimal("12.34"), 2) == 1234
    assert to_fixed(Decimal("0.1"), 2) + to_fixed(Decimal("0.2"), 2) == to_fixed(Decimal("0.3"), 2) == 30
    assert to_fixed(Decimal("1.005"), 3) == 1005  # round(1.005 * 100) on floats gives 100, not 100.5
    assert to_fixed(Decimal("4.35"), 2) == 435  # 4.35 * 100 == 434.99999999999994 in floats
    assert to_fixed(Decimal("1E+2"), 2) == 10000
    assert to_fixed(Decimal("-0.00"), 2) == 0
    assert to_fixed(42, 0) == 42


def test_huge_exponents_are_refused_without_being_expanded() -> None:
    with pytest.raises(OutOfRange):
        to_fixed(Decimal("1E+999999999"), 2)
    with pytest.raises(TooManyPlaces):
        to_fixed(Decimal("1E-999999999"), 2)
    assert to_fixed(Decimal("0E+999999999"), 2) == 0
    assert to_fixed(BIGINT_MAX, 0) == BIGINT_MAX
    with pytest.raises(OutOfRange):
        to_fixed(BIGINT_MAX + 1, 0)
    with pytest.raises(OutOfRange):
        to_fixed(Decimal(BIGINT_MAX // 100 + 1), 2)


def test_json_numbers_keep_every_digit() -> None:
    body = parse_body(b'{"a": 0.100000000000000000001, "b": 12.34, "c": 7}')
    assert body == {"a": Decimal("0.100000000000000000001"), "b": Decimal("12.34"), "c": 7}
    with pytest.raises(TooManyPlaces):
        to_fixed(body["a"], 2)


@pytest.mark.parametrize("raw", [b"{", b'{"a": NaN}', b'{"a": Infinity}', b"\xff", b"[" * 100_000])
def test_what_is_not_json_is_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedBatch):
        parse_body(raw)


def test_the_content_hash_ignores_layout_but_not_values() -> None:
    secrets = Secrets(master_key=b"m" * 32, pepper=b"p" * 32)
    one = parse_body(b'[{"citizen_id": "x", "pm25": 12.3, "no2": 1, "big": 1e400}]')
    same = parse_body(b'[ {"no2": 1, "pm25": 12.30,  "citizen_id": "x", "big": 10e399} ]')
    assert content_hash(one, secrets) == content_hash(same, secrets)
    for other in (b'[{"citizen_id": "x", "pm25": 12.31, "no2": 1, "big": 1e400}]',
                  b'[{"citizen_id": "x", "pm25": "12.3", "no2": 1, "big": 1e400}]',
                  b'[{"citizen_id": "x", "pm25": 12.3, "no2": 1, "big": 1e401}]',
                  b'[{"citizen_id": "x", "pm25": 12.3, "no2": 1}]'):
        assert content_hash(one, secrets) != content_hash(parse_body(other), secrets), other
    assert content_hash(one, secrets) != content_hash(one, Secrets(master_key=b"m" * 32, pepper=b"q" * 32))


def test_a_batch_nested_too_deeply_to_hash_is_malformed() -> None:
    nested: list = []
    for _ in range(50_000):
        nested = [nested]
    with pytest.raises(MalformedBatch):
        content_hash([{"citizen_id": "x", "pm25": nested}], Secrets(master_key=b"m" * 32, pepper=b"p" * 32))
