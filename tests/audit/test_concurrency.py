"""Concurrent appends from several processes and threads make one gap-free, consistent tree."""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor

from sqlalchemy import Engine, text

from broker.audit import AuditEvent, record
from broker.audit.integrator import integrate
from broker.audit.sources import verify_database
from broker.db import session_scope
from broker.keys import KeyRing, Secrets
from broker.settings import Settings
from broker.timeutil import FixedClock
from tests.audit import workers

PROCESSES = 3
PER_PROCESS = 30


def _seqs(engine: Engine) -> list[int]:
    with engine.connect() as connection:
        return list(connection.execute(text("SELECT seq FROM audit_entry ORDER BY seq")).scalars())


def test_appends_from_several_processes_make_one_gap_free_tree(engine: Engine, settings: Settings,
                                                               secrets: Secrets, clock: FixedClock,
                                                               keyring: KeyRing) -> None:
    url = settings.resolved_database_url()
    with ProcessPoolExecutor(PROCESSES + 1, mp_context=multiprocessing.get_context("spawn")) as pool:
        integrator = pool.submit(workers.integrate_for, url, str(settings.data_dir), str(settings.policy_dir), 4.0)
        appenders = [pool.submit(workers.append, url, w, PER_PROCESS) for w in range(PROCESSES)]
        committed = sum(f.result() for f in appenders)
        assert integrator.result() >= 1
    assert committed == PROCESSES * (PER_PROCESS - PER_PROCESS // 3)
    assert _seqs(engine) == list(range(committed))  # rolled-back appends gave their numbers back
    final = integrate(engine, secrets, clock)
    assert final is None or final.tree_size == committed
    report = verify_database(engine)
    assert report.ok, report.finding


def test_appends_from_threads_interleave_without_gaps(engine: Engine, secrets: Secrets, clock: FixedClock,
                                                      keyring: KeyRing) -> None:
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(15):
                with session_scope(engine) as session:
                    record(session, AuditEvent(actor=f"service:t{worker}", action="test.event",
                                               details={"i": i}), clock.now())
                if i % 5 == 0:
                    integrate(engine, secrets, clock)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert _seqs(engine) == list(range(60))
    integrate(engine, secrets, clock)
    assert verify_database(engine).ok
