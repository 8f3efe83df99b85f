"""Appending: canonical bytes, gap-free numbers, time that never goes backwards."""

from __future__ import annotations

from datetime import timedelta

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine

from broker.audit import AuditEvent, record
from broker.audit.log import canonical
from broker.audit.verify import parse_canonical
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
