"""The storage engine's settings: what durability and concurrency rest on."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from broker.db import make_engine, normalise_url


def test_sqlite_runs_in_wal_with_foreign_keys_busy_timeout_and_full_sync(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}", busy_timeout_ms=1234)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 1234
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
    engine.dispose()


def test_plain_postgresql_urls_use_psycopg3() -> None:
    assert normalise_url("postgresql://u@h/db").startswith("postgresql+psycopg://")
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"


def test_both_databases_answer(engine: Engine) -> None:
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1


def test_sqlite_reads_do_not_queue_behind_a_writer_and_cannot_write(tmp_path) -> None:
    from sqlalchemy.exc import OperationalError

    from broker.db import make_reader

    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}", busy_timeout_ms=0)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (v INTEGER)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))
    reader = make_reader(engine, busy_timeout_ms=0)
    with engine.begin() as writer:  # holds the write lock (BEGIN IMMEDIATE) until the block ends
        writer.execute(text("INSERT INTO t VALUES (2)"))
        with reader.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 1  # the last committed snapshot
    with reader.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 2
        with pytest.raises(OperationalError, match="readonly"):
            conn.execute(text("INSERT INTO t VALUES (3)"))
    reader.dispose()
    engine.dispose()
