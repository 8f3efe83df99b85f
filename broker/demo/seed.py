"""``seed_demo``: fill an empty broker with a demo city, once.

Order matters for "once": the notices and the three named citizens come first, then the population in
chunks (one transaction each), then the OAuth clients and the staff accounts; the admin account is the last
row written, so its presence means the demo is complete. A run that died half-way leaves named citizens
without an admin, which :func:`seed_demo` reports instead of seeding on top.

Determinism: a chunk's content is a function of ``(seed, chunk index, chunk size, policy, clock's day,
pepper)``; data keys and AES-GCM nonces are fresh randomness, so ciphertexts differ between runs while the
plaintexts behind them do not.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import Engine
from sqlmodel import Session, select

from broker.consent.notices import ensure_notice
from broker.db import session_scope
from broker.demo.chunks import ChunkPlan, Rows, record_rows
from broker.demo.consents import consent_purposes
from broker.demo.credentials import (
    CREDENTIALS_FILE,
    DemoCredentials,
    DemoLogin,
    create_staff,
    demo_domain,
    demo_seeded,
    register_clients,
    reissue_clients,
    staff_logins,
)
from broker.demo.loader import REBUILD_INDEXES_FROM, BulkWriter, StorageFormat, rebuildable_indexes
from broker.demo.named import NAMED, create_named, named_consenting
from broker.demo.producer import Chunk, in_process, in_worker
from broker.demo.records import DISTRICT_DOMAIN
from broker.demo.timestamps import day_us
from broker.identity.models import Account
from broker.keys import Secrets
from broker.policy.schema import Policy
from broker.runtime import Runtime
from broker.timeutil import Clock, as_utc
from broker.vault.tables import summary_ddl

CHUNK = 50_000
NAMED_STREAM = 2**32 - 1  # the named citizens' generator stream, apart from every chunk's
CHECK_ALL_EVIDENCE_UP_TO = 1_000  # small cities recompute every record's evidence the slow way too
WORKER_FROM_CITIZENS = 100_000  # a worker process takes a second or so to start: worth it for large cities

Progress = Callable[[str, int, int], None]


class DemoIncomplete(RuntimeError):
    """An earlier seeding stopped half-way; seeding again on top would duplicate the demo."""


@dataclass(frozen=True)
class _Target:
    engine: Engine
    policy: Policy
    secrets: Secrets
    clock: Clock
    data_dir: Path


def seed_demo(runtime: Runtime | None = None, *, engine: Engine | None = None, policy: Policy | None = None,
              secrets: Secrets | None = None, clock: Clock | None = None, data_dir: Path | None = None,
              citizens: int = 2_000, seed: int = 42, records_per_citizen: float = 10,
              progress: Progress | None = None, chunk_size: int = CHUNK,
              workers: int | None = None) -> DemoCredentials:
    """Seed the demo city once and return its credentials (also written to ``<data_dir>/demo-credentials.json``).

    Pass a :class:`Runtime`, or its parts (``engine``, ``policy``, ``secrets``, ``clock``, ``data_dir``).
    ``progress(stage, done, total)`` is called after each chunk. If the demo is already there, nothing is
    written and the existing credentials are returned. ``workers=1`` produces the chunks in a worker
    process while this one writes, ``0`` does everything here; by default a worker is used from 100,000
    citizens on a machine with more than one core. The rows are the same either way.
    """
    target = _target(runtime, engine, policy, secrets, clock, data_dir)
    path = target.data_dir / CREDENTIALS_FILE
    domain = demo_domain(target.policy)
    with session_scope(target.engine) as session:
        existing = _existing(session, target, path, domain)
    if existing is not None:
        if existing.path is None:
            existing.write(path)
        return existing

    now = as_utc(target.clock.now())
    districts = list(target.policy.broker.domains.get(DISTRICT_DOMAIN, []))
    with session_scope(target.engine) as session:
        notices = {p.id: ensure_notice(session, target.policy, p, now) for p in consent_purposes(target.policy)}
        logins, named = create_named(session, target.policy, target.secrets, now=now, domain=domain,
                                     rng=np.random.default_rng([seed, NAMED_STREAM]), districts=districts)
        named_given = named_consenting(session, target.policy, target.secrets, named, now)
    plan = ChunkPlan(
        policy=target.policy, secrets=target.secrets, seed=seed, domain=domain, districts=districts,
        notice_rows={pid: n.model_dump() for pid, n in notices.items()}, today=now.date(),
        today_us=day_us(now.date()), records_per_citizen=records_per_citizen,
        check_all=citizens <= CHECK_ALL_EVIDENCE_UP_TO, storage=StorageFormat.for_engine(target.engine))
    if workers is None:
        workers = 1 if citizens >= WORKER_FROM_CITIZENS and (os.cpu_count() or 1) > 1 else 0
    chunks = [(index, start + 1, min(chunk_size, citizens - start))
              for index, start in enumerate(range(0, citizens, chunk_size))]
    with _collector_paused():
        _load(target.engine, plan, chunks, named_rows=record_rows(
            plan, np.random.default_rng([seed, NAMED_STREAM, 1]), named, named_given),
            workers=workers, progress=progress)

    with session_scope(target.engine) as session:
        services, providers = register_clients(session, target.policy, now)
        staff = create_staff(session, target.secrets, domain, now)  # last: marks the demo complete
    credentials = DemoCredentials(services=services, providers=providers, citizens=logins,
                                  auditors=staff["auditors"], admins=staff["admins"])
    credentials.write(path)
    return credentials


def _load(engine: Engine, plan: ChunkPlan, chunks: list[Chunk], *, named_rows: Rows, workers: int,
          progress: Progress | None) -> None:
    """Write the named citizens' vault rows, then every chunk, one transaction each."""
    citizens = sum(size for _, _, size in chunks)
    big = citizens * plan.records_per_citizen >= REBUILD_INDEXES_FROM
    summaries = summary_ddl(plan.policy, engine.dialect.name) if big else []
    with BulkWriter(engine, rebuild=rebuildable_indexes(plan.policy) if big else [], summaries=summaries) as writer:
        _write(writer, named_rows)
        done = 0
        if progress is not None:
            progress("citizens", done, citizens)
        for size, rows in (in_worker if workers else in_process)(plan, chunks):
            _write(writer, rows)
            done += size
            if progress is not None:
                progress("citizens", done, citizens)
        if progress is not None and big:
            progress("indexes", 0, 1)
    if progress is not None and big:
        progress("indexes", 1, 1)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Millions of row tuples would set off the cyclic collector over and over for nothing: none of them
    holds a cycle, and each chunk is freed by reference counting once written (~15 % faster)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _target(runtime: Runtime | None, engine: Engine | None, policy: Policy | None, secrets: Secrets | None,
            clock: Clock | None, data_dir: Path | None) -> _Target:
    if runtime is not None:
        return _Target(runtime.engine, runtime.policy, runtime.secrets, runtime.clock,
                       data_dir or runtime.settings.data_dir)
    if engine is None or policy is None or secrets is None or clock is None or data_dir is None:
        raise TypeError("seed_demo needs a runtime, or engine, policy, secrets, clock and data_dir")
    return _Target(engine, policy, secrets, clock, data_dir)


def _existing(session: Session, target: _Target, path: Path, domain: str) -> DemoCredentials | None:
    """The credentials of a complete demo (None if there is none); refuses a half-seeded database."""
    if not demo_seeded(session, target.secrets, domain):
        named = target.secrets.email_index(f"{NAMED[0].local}@{domain}")
        if session.exec(select(Account).where(Account.email_index == named)).first():
            raise DemoIncomplete("an earlier demo seeding did not finish: delete the data directory "
                                 f"({target.data_dir}) or the database and run the demo again")
        return None
    if path.exists():
        return DemoCredentials.read(path)
    # The file is gone and the secrets with it (only hashes are stored): issue new client credentials.
    services, providers = reissue_clients(session, target.policy, as_utc(target.clock.now()))
    staff = staff_logins(domain)
    citizens = [DemoLogin(email=f"{n.local}@{domain}", password=n.password, name=n.name) for n in NAMED]
    return DemoCredentials(services=services, providers=providers, citizens=citizens,
                           auditors=staff["auditors"], admins=staff["admins"])


def _write(writer: BulkWriter, rows: Rows) -> None:
    writer.begin()
    for table, columns, values in rows:
        writer.insert(table, columns, values)
    writer.commit()
