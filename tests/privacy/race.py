"""Worker side of the budget race: one process, several threads, each charging one account until refused.

Lives in its own module so that ``multiprocessing``'s spawn start method can import it in the child.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from broker.db import make_engine, session_scope
from broker.policy.schema import Policy, Purpose
from broker.privacy.budget import BudgetLedger

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def charge_until_refused(url: str, policy_json: dict[str, Any], purpose_json: dict[str, Any], service: str,
                         epsilon_micro: int, threads: int, attempts: int, start: Any) -> list[int]:
    """Run in a spawned process: every thread waits at the barriers, then tries ``attempts`` charges.

    Returns one 1/0 per attempt (charged or refused).
    """
    policy = Policy.model_validate(policy_json)
    purpose = Purpose.model_validate(purpose_json)
    engine = make_engine(url, pool_size=threads, max_overflow=0)
    local = threading.Barrier(threads)

    def worker() -> list[int]:
        outcomes = []
        local.wait()
        for _ in range(attempts):
            with session_scope(engine) as session:
                charged = BudgetLedger(session, policy).charge(service, purpose, "air-exposure", epsilon_micro, NOW)
            outcomes.append(1 if charged is not None else 0)
        return outcomes

    # The first connection of each thread is opened before the start line, so the race is on the charges.
    with session_scope(engine) as session:
        session.connection()
    start.wait()
    with ThreadPoolExecutor(threads) as pool:
        results = [pool.submit(worker) for _ in range(threads)]
        done = [o for future in results for o in future.result()]
    engine.dispose()
    return done
