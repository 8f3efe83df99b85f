"""Appending: canonical bytes, gap-free numbers, time that never goes backwards."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine

from broker.audit import AuditEvent, record
from broker.audit.log import canonical, entry_of
from broker.audit.verify import check_entries, fast_canonical, parse_canonical
from broker.db import session_scope
from broker.timeutil import FixedClock
from tests.audit.conftest import entries_of

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(st.characters(exclude_categories=("Cs",))),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(st.characters(exclude_categories=("Cs",)), max_size=6), inner, max_size=4),
    max_leaves=12)


@given(json_values)
def test_canonical_bytes_are_rfc_8785_and_read_back_as_canonical(value: object) -> None:
    expected = rfc8785.dumps(value)
    assert canonical({"v": value}) == rfc8785.dumps({"v": value})
    body = '{"v":' + expected.decode() + "}"
    assert rfc8785.dumps(parse_canonical(body)).decode() == body  # accepted, and means the same


def spellings(value: object) -> list[bytes]:
    """The same document as RFC 8785, orjson and the standard library write it."""
    document = {"v": value}
    return [rfc8785.dumps(document), orjson.dumps(document, option=orjson.OPT_SORT_KEYS),
            json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(),
            json.dumps(document, sort_keys=True, separators=(",", ":")).encode()]


@given(json_values | st.floats(allow_nan=False, allow_infinity=False))
def test_the_orjson_fast_path_accepts_only_rfc_8785_bytes(value: object) -> None:
    expected = rfc8785.dumps({"v": value})
    for data in spellings(value):
        accepted = fast_canonical(data.decode(), data)
        if accepted is not None:  # the fast path may decline; when it accepts, the bytes are RFC 8785's
            assert data == expected
            assert rfc8785.dumps(accepted) == expected


@given(st.floats(min_value=1e-5, max_value=1e15, allow_nan=False).filter(lambda f: not f.is_integer())
       | st.integers(-(2**53) + 1, 2**53 - 1))
def test_the_fast_path_settles_the_numbers_entries_hold(value: float | int) -> None:
    data = rfc8785.dumps({"epsilon": value, "note": "one-time e-mail", "v": [value, -value]})
    assert fast_canonical(data.decode(), data) is not None


@pytest.mark.parametrize("value", [4.0, -0.0, 1e-7, 1e-6, 1.5e-6, 1e16, 1e21, 1.2345678901234568e20, 5e-324,
                                   2**53 - 1, "é", "\u2028", "\x1f", {"é": 1, "e": 2}, {"\U0001f600": 1, "\ufb01": 2}])
def test_where_orjson_and_rfc_8785_part_the_slow_path_decides(value: object) -> None:
    for data in spellings(value):
        accepted = fast_canonical(data.decode(), data)
        assert accepted is None or data == rfc8785.dumps({"v": value})
        if data == rfc8785.dumps({"v": value}):
            assert rfc8785.dumps(parse_canonical(data.decode())) == data
        else:
            with pytest.raises(ValueError):
                parse_canonical(data.decode())


@pytest.mark.parametrize("depth", [500, 5000])
def test_an_entry_nested_too_deep_is_a_finding_not_a_crash(depth: int) -> None:
    body = '{"a":' + "[" * depth + "]" * depth + ',"at":"2026-03-02T09:30:00.000000Z","seq":0}'
    checked = check_entries(0, [(0, body, None, None)])
    assert (checked.finding is None) == (depth == 500), checked.finding
    if checked.finding is not None:
        assert str(checked.finding).startswith("index 0: not a canonical JSON entry")


def test_a_typical_query_entry_takes_the_fast_path() -> None:
    event = AuditEvent(actor="service:mobility", action="query", purpose="traffic-planning", dataset="trips",
                       decision="allow", epsilon=0.25, reasons=["within-budget"], request_hash="9e" * 32,
                       details={"period": "2026", "caps": {"per_query": 0.5, "per_service": 4, "total": 6}})
    data = canonical(entry_of(7, datetime(2026, 3, 2, 9, 30, tzinfo=UTC), event))
    assert fast_canonical(data.decode(), data) == json.loads(data)


@pytest.mark.parametrize("body", ['{"a":4.0}', '{"a":1e-07}', '{"a":5e-05}', '{"a":NaN}', '{"a":-0}', '{"a":0.50}',
                                  '{"a":1,"a":1}', '{"b":1,"a":2}', '{ "a":1}', '{"a":"\\u00e9"}',
                                  '{"a":12345678901234567890}', "[1]"])
def test_other_spellings_of_the_same_json_are_not_canonical(body: str) -> None:
    with pytest.raises(ValueError):
        parse_canonical(body)


def test_entries_hold_what_is_set_and_time_never_goes_backwards(engine: Engine, clock: FixedClock) -> None:
    with session_scope(engine) as session:
        first = record(session, AuditEvent(actor="system", action="test.event", epsilon=0.0), clock.now())
        second = record(session, AuditEvent(actor="system", action="test.event", reasons=["a"]),
                        clock.now() - timedelta(seconds=5))  # a worker whose clock is behind
    assert (first, second) == (0, 1)
    one, two = entries_of(engine)
    assert one == {"seq": 0, "at": "2026-03-02T09:30:00.000000Z", "actor": "system", "action": "test.event",
                   "epsilon": 0}
    assert two["at"] == one["at"] and two["reasons"] == ["a"]


def test_an_event_needs_an_actor_and_a_short_action(engine: Engine, clock: FixedClock) -> None:
    with pytest.raises(ValueError), session_scope(engine) as session:
        record(session, AuditEvent(actor="", action="x"), clock.now())
    with pytest.raises(ValueError), session_scope(engine) as session:
        record(session, AuditEvent(actor="system", action="x" * 65), clock.now())
