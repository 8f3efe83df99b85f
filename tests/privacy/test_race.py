"""Two real processes × eight threads race on one budget account and never overspend, on both databases.

Processes are spawned (not forked), so each has its own interpreter, engine and connection pool; a
multiprocessing barrier releases them together, a threading barrier releases each process's threads together.
No sleeps: the race is as tight as the machine makes it.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from sqlalchemy import Engine
from sqlmodel import select

from broker.db import session_scope
from broker.policy import Policy
from broker.policy.schema import Budget
from broker.privacy.budget import SHARED
from broker.privacy.models import BudgetAccount
from tests.privacy.race import charge_until_refused

PROCESSES, THREADS, ATTEMPTS = 2, 8, 4
EPSILON = 30_000  # 0.03: 33 charges fit under the shared cap of 1.0, 20 under each service's 0.6


def test_two_processes_of_eight_threads_never_overspend(engine: Engine, policy: Policy) -> None:
    base = policy.purpose("air-quality-study")
    assert base is not None
    purpose = base.model_copy(update={"budget": Budget(per_query_epsilon=0.5, per_service_epsilon=0.6,
                                                       total_epsilon=1.0)})
    url = engine.url.render_as_string(hide_password=False)
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        start = manager.Barrier(PROCESSES)
        with ProcessPoolExecutor(PROCESSES, mp_context=context) as pool:
            futures = [pool.submit(charge_until_refused, url, policy.model_dump(mode="json"),
                                   purpose.model_dump(mode="json"), f"svc-{i}", EPSILON, THREADS, ATTEMPTS, start)
                       for i in range(PROCESSES)]
            successes = [sum(f.result()) for f in futures]

    with session_scope(engine) as session:
        accounts = {a.service_id: a.spent_micro for a in session.exec(select(BudgetAccount))}
    assert accounts[SHARED] <= 1_000_000
    assert all(accounts[f"svc-{i}"] <= 600_000 for i in range(PROCESSES))
    # Every success was charged exactly once on both accounts, and nothing else was.
    assert accounts[SHARED] == sum(successes) * EPSILON
    assert [accounts[f"svc-{i}"] for i in range(PROCESSES)] == [s * EPSILON for s in successes]
    # 64 attempts against room for 33: the shared cap is reached exactly (each service alone could do 20).
    assert sum(successes) == 33
