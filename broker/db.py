"""Database engines and sessions.

SQLite is the embedded default: WAL so readers never block the writer, foreign keys on (SQLite leaves them
off per connection), a busy timeout so concurrent writers queue instead of failing, and
``synchronous=FULL`` so that every acknowledged commit survives a power cut, not only a process crash.
PostgreSQL goes through psycopg 3.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Select, Table, create_engine, event, exists
from sqlalchemy.engine import make_url
from sqlmodel import Session


def normalise_url(url: str) -> str:
    """Route plain ``postgresql://`` URLs to psycopg 3 rather than SQLAlchemy's psycopg2 default."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


#: PostgreSQL cuts longer names (NAMEDATALEN - 1), so two long names could become one.
MAX_NAME = 63


def sql_name(*parts: str, limit: int = MAX_NAME) -> str:
    """A table, index, trigger or column name made of ``parts`` (policy ids, with '-' as '_'), whole if it fits
    in ``limit`` characters, else cut and ended with a hash of the whole name, so that it stays distinct and is
    the same on every dialect."""
    name = "".join(parts).replace("-", "_")
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    return f"{name[:limit - len(digest) - 1]}_{digest}"


def is_sqlite(engine_or_url: Engine | str) -> bool:
    url = engine_or_url if isinstance(engine_or_url, str) else str(engine_or_url.url)
    return url.startswith("sqlite")


def make_engine(url: str, *, busy_timeout_ms: int = 10_000, **kwargs: Any) -> Engine:
    url = normalise_url(url)
    if not is_sqlite(url):
        return create_engine(url, pool_pre_ping=True, **kwargs)

    engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        # Python's sqlite3 opens transactions lazily and lets SQLite pick DEFERRED locking; a deferred
        # transaction that later writes can fail with SQLITE_BUSY without waiting. BEGIN IMMEDIATE (below)
        # takes the write lock up front, so the busy timeout applies and writers queue instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def make_reader(engine: Engine, *, busy_timeout_ms: int = 10_000) -> Engine:
    """An engine for reads only. On a SQLite file it is a second, ``query_only`` engine whose transactions
    stay DEFERRED, so reads never queue behind the write lock that every :func:`make_engine` transaction
    takes; WAL gives them a consistent snapshot. Elsewhere (PostgreSQL, in-memory SQLite, which exists once
    per connection) it is the engine itself."""
    if not is_sqlite(engine) or engine.url.database in (None, "", ":memory:"):
        return engine
    reader = create_engine(engine.url, connect_args={"check_same_thread": False})

    @event.listens_for(reader, "connect")
    def _reader_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA query_only=ON")  # this engine can never write, whatever a bug asks of it
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    return reader


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A unit of work: commits on success, rolls back on any exception."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def not_among(session: Session, column: Any, members: Select) -> ColumnElement[bool]:
    """``column`` is not one of the values ``members`` selects (its single column): an anti-join either way.

    SQLite builds one ephemeral index for ``NOT IN`` and probes it per row; PostgreSQL runs ``NOT IN`` over a
    subquery row by row once it outgrows ``work_mem`` (``NOT IN`` must honour NULLs), so it gets ``NOT EXISTS``,
    which it plans as a hash anti-join.
    """
    if session.get_bind().dialect.name == "postgresql":
        inner = members.subquery()
        return ~exists().where(inner.c[0] == column)
    return column.not_in(members)


def bulk_insert(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` into ``table`` as one statement where the database can: ``COPY`` on PostgreSQL, so that
    statement triggers (the vault summaries') run once for the whole batch, not once per row as an
    ``executemany`` would have them; ``executemany`` on SQLite, whose triggers are per row anyway."""
    if not rows:
        return
    if connection.dialect.name != "postgresql":
        connection.execute(table.insert(), rows)
        return
    names = list(rows[0])
    driver = connection.connection.driver_connection
    with driver.cursor() as cursor, cursor.copy(  # type: ignore[union-attr]
            f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(tuple(row[name] for name in names))
