"""The storage engine's settings: what durability and concurrency rest on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from broker.db import MAX_NAME, make_engine, normalise_url, sql_name


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


ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=120)


@given(ids, ids)
def test_sql_names_fit_postgresql_and_stay_distinct(one: str, other: str) -> None:
    first, second = sql_name("vault_", one), sql_name("vault_", other)
    assert len(first) <= MAX_NAME
    if len("vault_" + one) <= MAX_NAME:
        assert first == "vault_" + one  # names that fit are kept as they always were
    else:
        assert first.startswith(("vault_" + one)[:40])  # still readable
    assert (first == second) == (one == other)


def test_a_minus_in_an_id_becomes_an_underscore_and_a_limit_is_kept() -> None:
    assert sql_name("summary_", "air-exposure") == "summary_air_exposure"
    assert len(sql_name("consent__", "p" * 63, limit=53)) == 53
