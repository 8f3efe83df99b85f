"""The integrator: folds committed entries into the Merkle tree and signs a checkpoint for the new size.

One integrator works at a time, whichever worker or command runs it: on PostgreSQL it holds a transaction
advisory lock (a worker that finds it taken simply skips its turn), on SQLite the write lock every
transaction takes (``BEGIN IMMEDIATE``) plus the ``integrator`` row of ``audit_state``. Entries become
visible in ``seq`` order (see :mod:`broker.audit.log`), so what it reads past the tree's size is always a
gap-free run. It rehashes each entry's body rather than trusting the stored leaf hash, and stops at the first
entry that does not match: it never signs over something it did not check.

Every worker runs :class:`BackgroundIntegrator` (an asyncio task in the app's lifespan), so a checkpoint
follows new entries within ``interval`` seconds as long as any worker is up; N workers only contend for the
lock. The CLI (``consent-broker audit integrate``) and the proof endpoints run :func:`integrate` directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import anyio
from sqlalchemy import Connection, Engine, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from broker import logs
from broker.audit import checkpoints, rfc9162
from broker.audit.checkpoints import Checkpoint
from broker.audit.log import SEQUENCER, from_micros, micros, timestamp
from broker.audit.models import AuditEntry, AuditNode, AuditState
from broker.audit.tree import StoredTree, node_id
from broker.db import session_scope
from broker.keys import KeyRing, Secrets
from broker.timeutil import Clock

log = logging.getLogger("broker.audit")

INTEGRATOR = "integrator"
BATCH = 20_000  # leaves per transaction: on SQLite every writer waits while the integrator folds
ADVISORY_LOCK = 0x6175_6469_7400  # "audit\0": the integrator's PostgreSQL advisory lock key
_ENTRIES = AuditEntry.__table__
_NODES = AuditNode.__table__
_STATE = AuditState.__table__


class IntegrationHalted(RuntimeError):
    """A stored entry does not match its leaf hash: the integrator refuses to sign over it."""


@dataclass(frozen=True)
class Positions:
    appended: int  # entries committed (the sequencer's next seq)
    integrated: int  # leaves in the tree


def positions(connection: Connection) -> Positions:
    rows = dict(connection.execute(select(_STATE.c.name, _STATE.c.position)).all())
    return Positions(appended=rows.get(SEQUENCER, 0), integrated=rows.get(INTEGRATOR, 0))


def _locked(connection: Connection) -> bool:
    if connection.dialect.name == "postgresql":
        return bool(connection.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})
                    .scalar())
    return True  # SQLite: this transaction began IMMEDIATE and is the only writer


def _state(connection: Connection) -> tuple[int, int]:
    row = connection.execute(select(_STATE.c.position, _STATE.c.moment_us).where(_STATE.c.name == INTEGRATOR)).first()
    if row is None:
        insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
        connection.execute(insert(_STATE).values(name=INTEGRATOR, position=0, moment_us=0)
                           .on_conflict_do_nothing(index_elements=["name"]))
        return 0, 0
    return row.position, row.moment_us


def _fold_batch(connection: Connection, keyring: KeyRing, clock: Clock, batch: int) -> tuple[Checkpoint | None, int]:
    """Fold up to ``batch`` entries and sign the new size; (None, 0) when there is nothing to sign."""
    size, last_us = _state(connection)
    rows = connection.execute(select(_ENTRIES.c.seq, _ENTRIES.c.leaf_hash, _ENTRIES.c.body)
                              .where(_ENTRIES.c.seq >= size).order_by(_ENTRIES.c.seq).limit(batch)).all()
    tree = rfc9162.CompactRange(size, StoredTree(connection).peaks(size))
    nodes: list[dict[str, object]] = []

    def keep(level: int, index: int, digest: bytes) -> None:
        nodes.append({"id": node_id(level, index), "hash": digest})

    for seq, stored, body in rows:
        if seq != tree.size:
            break  # a gap cannot be committed (see broker.audit.log); stop before it all the same
        leaf = rfc9162.leaf_hash(body.encode())
        if leaf != bytes(stored):
            logs.event(log, "audit_integration_halted", logging.ERROR, seq=seq)
            raise IntegrationHalted(f"entry {seq} does not match its stored leaf hash")
        tree.append(leaf, keep)
    folded = tree.size - size
    if folded == 0 and checkpoints.at_size(connection, size) is not None:
        return None, 0
    if nodes:
        connection.execute(_NODES.insert(), nodes)
    moment_us = max(micros(clock.now()), last_us)  # checkpoint times never go backwards
    checkpoint = checkpoints.sign_checkpoint(keyring, tree.size, tree.root(), timestamp(from_micros(moment_us)))
    checkpoints.store(connection, checkpoint)
    connection.execute(update(_STATE).where(_STATE.c.name == INTEGRATOR)
                       .values(position=tree.size, moment_us=moment_us))
    return checkpoint, folded


def integrate(engine: Engine, secrets: Secrets, clock: Clock, *, batch: int = BATCH) -> Checkpoint | None:
    """Fold everything committed so far, ``batch`` leaves per transaction; the newest checkpoint signed, or
    None if there was nothing to do (or another integrator holds the lock)."""
    newest: Checkpoint | None = None
    while True:
        with session_scope(engine) as session:
            connection = session.connection()
            if not _locked(connection):
                return newest
            signed, folded = _fold_batch(connection, keyring=KeyRing.load(session, secrets), clock=clock,
                                         batch=batch)
        newest = signed or newest
        if folded < batch:
            return newest


def integrate_if_behind(engine: Engine, secrets: Secrets, clock: Clock, reader: Engine | None = None) -> None:
    """Integrate when entries wait to be folded (or no checkpoint exists yet); a cheap read otherwise (through
    ``reader``, which on SQLite does not take the write lock)."""
    with session_scope(reader or engine) as session:
        connection = session.connection()
        where = positions(connection)
        empty = where.appended == 0 and checkpoints.latest(connection) is None
    if where.appended > where.integrated or empty:
        integrate(engine, secrets, clock)


class BackgroundIntegrator:
    """An asyncio task (one per worker) that integrates every ``interval`` seconds while entries arrive."""

    def __init__(self, engine: Engine, secrets: Secrets, clock: Clock, interval: float = 0.5,
                 reader: Engine | None = None) -> None:
        self.engine = engine
        self.reader = reader
        self.secrets = secrets
        self.clock = clock
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="audit-integrator")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                # Not cancellable mid-way: shutdown waits for a running integration to commit or roll back.
                await anyio.to_thread.run_sync(integrate_if_behind, self.engine, self.secrets, self.clock,
                                               self.reader)
            except Exception as exc:  # keep integrating after a transient error (a lost connection, a busy lock)
                logs.event(log, "audit_integration_failed", logging.ERROR, error=type(exc).__name__)
            await asyncio.sleep(self.interval)
