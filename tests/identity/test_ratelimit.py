"""Login throttling in the database: per key, fixed window, every failure counted under concurrency."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import Engine, text

from broker.db import session_scope
from broker.identity.ratelimit import Limits, LoginThrottleService, TooManyLoginAttempts
from broker.keys import Secrets
from broker.timeutil import FixedClock

LIMITS = Limits(window=timedelta(minutes=15), per_account=5, per_address=20)


def _run(engine: Engine, secrets: Secrets, clock: FixedClock, action: str, *args: object) -> object:
    with session_scope(engine) as session:
        return getattr(LoginThrottleService(session, secrets, clock, LIMITS), action)(*args)


def _failures(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {k.split(":")[0]: n for k, n in conn.execute(text("SELECT key, failures FROM login_throttle"))}


def test_failures_count_per_account_and_address(engine: Engine, secrets: Secrets, clock: FixedClock) -> None:
    index = secrets.email_index("a@lyon.example")
    for _ in range(4):
        _run(engine, secrets, clock, "record_failure", index, "192.0.2.1")
    _run(engine, secrets, clock, "check", index, "192.0.2.1")  # four: still allowed
    _run(engine, secrets, clock, "record_failure", index, "192.0.2.1")
    with pytest.raises(TooManyLoginAttempts) as refused:
        _run(engine, secrets, clock, "check", index, "192.0.2.1")
    assert refused.value.headers == {"Retry-After": str(15 * 60)}
    assert refused.value.status == 429
    _run(engine, secrets, clock, "check", secrets.email_index("b@lyon.example"), "192.0.2.2")  # others unaffected
    assert _failures(engine) == {"account": 5, "address": 5}


def test_a_new_window_starts_from_zero(engine: Engine, secrets: Secrets, clock: FixedClock) -> None:
    index = secrets.email_index("a@lyon.example")
    for _ in range(5):
        _run(engine, secrets, clock, "record_failure", index, None)
    clock.advance(minutes=15)
    _run(engine, secrets, clock, "check", index, None)
    _run(engine, secrets, clock, "record_failure", index, None)
    assert _failures(engine)["account"] == 1
    clock.advance(minutes=15)
    assert _run(engine, secrets, clock, "prune") == 2


def test_concurrent_failures_are_all_counted(engine: Engine, secrets: Secrets, clock: FixedClock) -> None:
    """Many workers failing at once on one key: the upsert leaves no lost update."""
    index = secrets.email_index("target@lyon.example")
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            for _ in range(5):
                _run(engine, secrets, clock, "record_failure", index, "192.0.2.1")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert _failures(engine) == {"account": 40, "address": 40}
