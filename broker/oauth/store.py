"""What the OAuth server remembers, in the database so that every worker sees the same (DESIGN §7).

authlib calls back into the server (``query_client``, ``save_token``, ``validate_jti``...) without passing a
database connection, so each OAuth request runs in a :meth:`OAuthStore.request` scope that the callbacks find
with :func:`current`: they **read** through its connection and **queue** their writes. The writes of a request
(the assertion's ``jti``, the issued token's ``jti``, a revocation) are applied together once authlib has
answered, in one transaction, by :meth:`OAuthStore.commit`.

Why not one transaction around the whole request: on SQLite every transaction of the broker's engine takes
the write lock up front (``BEGIN IMMEDIATE``, see broker.db), so holding one across authlib's work (signature
checks, token signing) would serialise every request, and waiters poll for the lock with sleeps of one
millisecond and more. Instead, on SQLite:

* reads go through a second, **read-only** engine on the same file (``PRAGMA query_only``, no ``BEGIN``):
  in WAL mode a reader sees the last commit and neither waits for the writer nor blocks it;
* writes go through a **group commit**: concurrent requests queue their writes, one of them commits the whole
  queue in one transaction (one fsync, as ``synchronous=FULL`` wants for durability) and wakes the others.

On PostgreSQL, reads and writes use the broker's engine directly; PostgreSQL commits concurrent
transactions in parallel and groups their WAL flushes itself.

Correctness does not rest on the pre-commit reads: replay is decided by the primary key of
``oauth_used_assertion`` at commit (``INSERT ... ON CONFLICT DO NOTHING``), so of two workers presented the
same assertion at once, exactly one wins, on either engine; the loser's request answers ``invalid_client``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Row, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from broker.audit import AuditEvent
from broker.audit import record as record_audit
from broker.db import is_sqlite
from broker.oauth.models import IssuedToken, OAuthClient, UsedAssertion
from broker.timeutil import as_utc

T = TypeVar("T")

#: Rows outlive their expiry by this much before they are purged, so that a worker whose clock runs a little
#: behind still finds the row of a token it considers live, and refuses a replay it would otherwise accept.
PURGE_GRACE = timedelta(minutes=5)


# -- one request ---------------------------------------------------------------------------------------------

@dataclass
class PendingWrites:
    """What a request will write once authlib has answered."""

    assertion: dict[str, Any] | None = None  # an oauth_used_assertion row
    issued: list[dict[str, Any]] = field(default_factory=list)  # oauth_issued_token rows
    revoked: list[str] = field(default_factory=list)
    purge_before: datetime | None = None
    # Audit entries, written with the writes they record: issued tokens always, a revocation (keyed by jti)
    # only when it revokes a token that was live.
    audit: list[AuditEvent] = field(default_factory=list)
    revocations: dict[str, AuditEvent] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.assertion or self.issued or self.revoked or self.purge_before or self.audit)


@dataclass
class RequestScope:
    connection: Connection  # for reads
    writes: PendingWrites = field(default_factory=PendingWrites)


_scope: ContextVar[RequestScope | None] = ContextVar("oauth_request_scope", default=None)


def current() -> RequestScope:
    scope = _scope.get()
    if scope is None:
        raise RuntimeError("OAuth server callback outside OAuthStore.request()")
    return scope


# -- queries (SQLAlchemy Core: these run on every token request and every protected request) ------------------

_CLIENTS = OAuthClient.__table__
_ISSUED = IssuedToken.__table__
_USED = UsedAssertion.__table__
_CLIENT = select(_CLIENTS).where(_CLIENTS.c.client_id == bindparam("client_id"))
_TOKEN_STATE = (
    select(_ISSUED.c.client_id, _CLIENTS.c.service_id, _ISSUED.c.revoked_at, _CLIENTS.c.disabled_at)
    .join(_CLIENTS, _CLIENTS.c.client_id == _ISSUED.c.client_id)
    .where(_ISSUED.c.jti == bindparam("jti"))
)


def client_row(connection: Connection, client_id: str) -> Row[Any] | None:
    """The registered client (a row with OAuthClient's columns as attributes), or None."""
    return connection.execute(_CLIENT, {"client_id": client_id}).first()


@dataclass(frozen=True)
class TokenState:
    """What the database says about an issued token, beyond what its signature proves."""

    client_id: str
    service_id: str
    revoked: bool
    client_disabled: bool

    @property
    def usable(self) -> bool:
        return not self.revoked and not self.client_disabled


def token_state(connection: Connection, jti: str) -> TokenState | None:
    """The token's row joined to its client (one round trip); None for a jti the broker never issued."""
    row = connection.execute(_TOKEN_STATE, {"jti": jti}).first()
    if row is None:
        return None
    client_id, service_id, revoked_at, disabled_at = row
    return TokenState(client_id=client_id, service_id=service_id, revoked=revoked_at is not None,
                      client_disabled=disabled_at is not None)


def record_assertion(connection: Connection, row: dict[str, Any]) -> bool:
    """Remember an accepted client assertion; False when its jti was seen before (a replay)."""
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    statement = (
        insert(_USED).values(**row)
        .on_conflict_do_nothing(index_elements=["client_id", "jti"])
        .returning(_USED.c.jti)  # rowcount is -1 here on psycopg; RETURNING says it on both engines
    )
    return connection.execute(statement).first() is not None


def _apply(connection: Connection, writes: PendingWrites, now: datetime) -> bool:
    """Write one request's changes; False, having written nothing, if its assertion was a replay."""
    with connection.begin_nested():  # a savepoint: in a group commit, one request's failure spares the others
        if writes.assertion is not None and not record_assertion(connection, writes.assertion):
            return False
        if writes.issued:
            connection.execute(_ISSUED.insert(), writes.issued)
        for event in writes.audit:
            record_audit(connection, event, now)
        for jti in writes.revoked:
            revoked = connection.execute(_ISSUED.update().where(_ISSUED.c.jti == jti, _ISSUED.c.revoked_at.is_(None))
                                         .values(revoked_at=now).returning(_ISSUED.c.jti)).first()
            if revoked is not None and jti in writes.revocations:
                record_audit(connection, writes.revocations[jti], now)
        if writes.purge_before is not None:
            cutoff = as_utc(writes.purge_before) - PURGE_GRACE
            connection.execute(_ISSUED.delete().where(_ISSUED.c.expires_at < cutoff))
            connection.execute(_USED.delete().where(_USED.c.expires_at < cutoff))
    return True


# -- the store -----------------------------------------------------------------------------------------------

class OAuthStore:
    def __init__(self, engine: Engine, read_engine: Engine) -> None:
        self.engine = engine
        self.read_engine = read_engine
        self._group = _GroupCommit(engine) if is_sqlite(engine) else None

    def token_state(self, jti: str) -> TokenState | None:
        with self.read_engine.connect() as connection:
            return token_state(connection, jti)

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """An ORM session for reads (the key ring)."""
        with Session(self.read_engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def request(self) -> Iterator[RequestScope]:
        """The scope authlib's callbacks see (through :func:`current`) while it handles one request."""
        with self.read_engine.connect() as connection:
            scope = RequestScope(connection)
            token = _scope.set(scope)
            try:
                yield scope
            finally:
                _scope.reset(token)

    def commit(self, writes: PendingWrites, now: datetime) -> bool:
        """Apply one request's writes, durably; False if its assertion turned out to be a replay."""
        if self._group is not None:
            return self._group.submit(lambda connection: _apply(connection, writes, now))
        with self.engine.begin() as connection:
            return _apply(connection, writes, now)

class _GroupCommit:
    """Many requests' writes in one SQLite transaction: one lock, one fsync for the lot.

    No background thread: the first waiting request becomes the leader, takes every queued batch of writes,
    commits them together and wakes the followers; whoever queued meanwhile goes with the next leader.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Condition()
        self._queue: list[_Item] = []
        self._committing = False

    def submit(self, work: Callable[[Connection], T]) -> T:
        item = _Item(work)
        with self._lock:
            self._queue.append(item)
            while self._committing and not item.done:
                self._lock.wait()
            if item.done:
                return item.result()
            batch, self._queue, self._committing = self._queue, [], True
        try:
            self._run(batch)
        finally:
            with self._lock:
                self._committing = False
                self._lock.notify_all()
        return item.result()

    def _run(self, batch: list[_Item]) -> None:
        try:
            with self._engine.begin() as connection:
                for item in batch:
                    try:
                        item.value = item.work(connection)
                    except Exception as exc:
                        item.error = exc
        except Exception as exc:  # the commit itself failed: nothing of the batch was written
            for item in batch:
                item.error = item.error or exc
        for item in batch:
            item.done = True


class _Item:
    def __init__(self, work: Callable[[Connection], Any]) -> None:
        self.work = work
        self.value: Any = None
        self.error: Exception | None = None
        self.done = False

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value
