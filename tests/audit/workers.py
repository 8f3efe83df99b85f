"""Code run in child processes by the concurrency tests (importable by a spawned interpreter)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from broker.audit import AuditEvent, record
from broker.audit.integrator import integrate
from broker.db import make_engine, session_scope
from broker.keys import Secrets
from broker.settings import Settings
from broker.timeutil import SystemClock


class Failed(Exception):
    pass


def append(url: str, worker: int, count: int) -> int:
    """``count`` appends, every third one in a transaction that rolls back after logging; returns commits."""
    engine = make_engine(url)
    committed = 0
    try:
        for i in range(count):
            try:
                with session_scope(engine) as session:
                    record(session, AuditEvent(actor=f"service:worker-{worker}", action="test.event",
                                               details={"worker": worker, "i": i}), datetime.now(UTC))
                    if i % 3 == 2:
                        raise Failed
                committed += 1
            except Failed:
                pass
    finally:
        engine.dispose()
    return committed


def integrate_for(url: str, data_dir: str, policy_dir: str, seconds: float) -> int:
    """Integrate again and again for ``seconds``; returns how many checkpoints it signed."""
    engine = make_engine(url)
    secrets = Secrets.from_settings(Settings(data_dir=Path(data_dir), database_url=url, policy_dir=Path(policy_dir)))
    signed = 0
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            if integrate(engine, secrets, SystemClock(), batch=7) is not None:
                signed += 1
            time.sleep(0.01)
    finally:
        engine.dispose()
    return signed
