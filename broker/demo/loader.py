"""Bulk writing for the demo seeder: DBAPI ``executemany`` on SQLite, ``COPY`` on PostgreSQL.

The ORM costs tens of µs a row; ten million rows need the driver's own bulk paths, fed with values already in
the form the database stores (SQLite keeps instants as text, exactly as SQLAlchemy's DATETIME writes them).

On SQLite the load runs with ``synchronous=OFF`` and a large page cache on its own connection, and the
vault's and the consent ledger's non-unique indexes are dropped first and rebuilt at the end (one sort
instead of millions of B-tree inserts at random places). That trades durability for speed during seeding
only: a crash mid-seed can lose or corrupt the demo database, and the fix is to delete the data directory
and run ``consent-broker demo`` again. The connection goes back to ``synchronous=FULL`` and the WAL is
checkpointed before the seeder returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import numpy as np
from sqlalchemy import DateTime, Engine, Index
from sqlalchemy.schema import CreateIndex, DropIndex

from broker.consent.models import ConsentRecord
from broker.db import is_sqlite
from broker.demo.timestamps import format_instants, to_us
from broker.policy.schema import Policy
from broker.vault.summaries import SummaryDDL
from broker.vault.tables import vault_metadata

SQLITE_CACHE_KIB = 1_048_576  # 1 GiB of page cache while loading (negative cache_size = KiB)
# Below this many rows, dropping and rebuilding indexes costs more than it saves.
REBUILD_INDEXES_FROM = 200_000


@dataclass(frozen=True)
class StorageFormat:
    """How values are handed to the driver: SQLite keeps instants as SQLAlchemy's DATETIME text (compared as
    text by every range query, so it must match to the character); PostgreSQL parses ISO text with an offset."""

    instant_suffix: str

    @classmethod
    def for_engine(cls, engine: Engine) -> StorageFormat:
        if not is_sqlite(engine):
            return cls(instant_suffix="+00")
        storage = cls(instant_suffix="")
        storage.check_sqlite(engine)
        return storage

    def instants(self, us: np.ndarray) -> list[str]:
        """UTC instants (µs since the epoch) as the text the database keeps or parses for a timestamp."""
        return format_instants(us, sep=" ", suffix=self.instant_suffix)

    def check_sqlite(self, engine: Engine) -> None:
        dialect = engine.dialect
        processor = DateTime(timezone=True).dialect_impl(dialect).bind_processor(dialect)
        sample = datetime(2026, 2, 28, 23, 59, 58, 123_456, tzinfo=UTC)
        expected = processor(sample) if processor else None
        written = self.instants(np.array([to_us(sample)]))[0]
        if expected != written:
            raise RuntimeError(f"SQLite stores {expected!r} where the seeder would write {written!r}")


class BulkWriter:
    """One connection that writes batches of rows, one transaction from each :meth:`begin` to :meth:`commit`."""

    def __init__(self, engine: Engine, *, rebuild: Sequence[Index] = (),
                 summaries: Sequence[SummaryDDL] = ()) -> None:
        self.engine = engine
        self.sqlite = is_sqlite(engine)
        self.rebuild = list(rebuild)
        # For a large load the summary triggers are dropped and the summaries computed once at the end: SQLite's
        # fire per row, and PostgreSQL's, though once per statement, re-summarise every citizen a batch touches
        # (seeding 100,000 citizens on PostgreSQL: 600 s with them, 23 s with one rebuild).
        self.summaries = list(summaries)
        self._raw: Any = None
        self._saved_cache: int | None = None

    # -- lifecycle ------------------------------------------------------------------------------------------
    def __enter__(self) -> BulkWriter:
        self._raw = self.engine.raw_connection()
        if self.sqlite:
            self._saved_cache = self._execute("PRAGMA cache_size").fetchone()[0]
            self._execute("PRAGMA synchronous=OFF")
            self._execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
            # Index builds may sort on a helper thread: the second core has little else to do by then.
            self._execute("PRAGMA threads=2")
        else:
            self._execute("SET synchronous_commit TO off")
            self._raw.commit()
        self._ddl(DropIndex(index, if_exists=True) for index in self.rebuild)
        self._sql([statement for summary in self.summaries for statement in summary.drop_triggers()])
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        try:
            if kind is not None:
                self._rollback()
            # Rebuilt even after a failure, so the schema stays whole whatever state the rows are in.
            self._ddl(CreateIndex(index, if_not_exists=True) for index in self.rebuild)
            self._sql([statement for summary in self.summaries
                       for statement in summary.rebuild() + summary.drop_triggers() + summary.create_triggers()])
        finally:
            if self.sqlite:
                self._execute("PRAGMA synchronous=FULL")
                self._execute(f"PRAGMA cache_size={self._saved_cache}")
                self._execute("PRAGMA threads=0")
                self._execute("PRAGMA wal_checkpoint(TRUNCATE)")
            else:
                self._execute("RESET synchronous_commit")
                self._raw.commit()
            self._raw.close()

    # -- writing --------------------------------------------------------------------------------------------
    def begin(self) -> None:
        if self.sqlite:
            self._execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        if self.sqlite:
            self._execute("COMMIT")
        else:
            self._raw.commit()

    def insert(self, table: str, columns: Sequence[str], rows: list[tuple]) -> None:
        if not rows:
            return
        names = ", ".join(columns)
        if self.sqlite:
            marks = ", ".join("?" * len(columns))
            self._raw.driver_connection.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)
            return
        with self._raw.driver_connection.cursor() as cursor, \
                cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    # -- internals ------------------------------------------------------------------------------------------
    def _execute(self, sql: str) -> Any:
        cursor = self._raw.driver_connection.cursor()
        cursor.execute(sql)
        return cursor

    def _rollback(self) -> None:
        if self.sqlite:
            if not self._raw.driver_connection.in_transaction:
                return
            self._execute("ROLLBACK")
        else:
            self._raw.rollback()

    def _ddl(self, statements: Iterable[Any]) -> None:
        self._sql([str(statement.compile(dialect=self.engine.dialect)) for statement in statements])

    def _sql(self, statements: list[str]) -> None:
        """In one transaction."""
        if not statements:
            return
        self.begin()
        for statement in statements:
            self._execute(statement)
        self.commit()


def rebuildable_indexes(policy: Policy) -> list[Index]:
    """Indexes cheaper to rebuild once than to maintain row by row during a large load: the vault's, and the
    consent ledger's non-unique ones (unique constraints stay, so duplicates are still refused at insert)."""
    _, tables = vault_metadata(policy)
    vault = [index for table in tables.values() for index in table.indexes]
    consent = [index for index in ConsentRecord.__table__.indexes if not index.unique]  # type: ignore[attr-defined]
    return vault + consent
