"""The log's tables are append-only in the database itself (entries, tree nodes, checkpoints); a log tampered
with past that guard still fails verify."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from broker.audit.integrator import integrate
from broker.audit.sources import verify_database
from broker.keys import KeyRing, Secrets
from broker.timeutil import FixedClock
from tests.audit.conftest import Append, drop_append_only, execute


def _bodies(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.execute(text("SELECT body FROM audit_entry ORDER BY seq")).scalars())


@pytest.mark.parametrize("statement", [
    "UPDATE audit_entry SET actor = 'service:someone-else' WHERE seq = 1",
    "UPDATE audit_entry SET seq = seq + 100",
    "DELETE FROM audit_entry WHERE seq = 2",
    "DELETE FROM audit_entry",
])
def test_the_database_refuses_to_change_or_delete_an_audit_entry(engine: Engine, append: Append,
                                                                 statement: str) -> None:
    append(3)
    before = _bodies(engine)
    with pytest.raises(DBAPIError, match="audit entries are append-only"):
        execute(engine, statement)
    assert _bodies(engine) == before


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite has no TRUNCATE
def test_postgresql_refuses_to_truncate_the_log(engine: Engine, append: Append) -> None:
    assert engine.dialect.name == "postgresql"
    append(2)
    with pytest.raises(DBAPIError, match="audit entries are append-only"):
        execute(engine, "TRUNCATE audit_entry")
    assert len(_bodies(engine)) == 2


def test_appending_still_works_and_verify_still_catches_a_change_made_without_the_triggers(
        engine: Engine, append: Append) -> None:
    append(5)
    assert verify_database(engine).ok
    drop_append_only(engine)
    execute(engine, "UPDATE audit_entry SET body = replace(body, :old, :new) WHERE seq = 3", old='"i":3', new='"i":33')
    finding = str(verify_database(engine).finding)
    assert finding.startswith("index 3: the entry hashes to"), finding


def _count(engine: Engine, table: str) -> int:
    with engine.connect() as connection:
        return connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


@pytest.mark.parametrize(("table", "statement"), [
    ("audit_node", "UPDATE audit_node SET hash = hash WHERE id = (SELECT min(id) FROM audit_node)"),
    ("audit_node", "DELETE FROM audit_node"),
    ("audit_checkpoint", "UPDATE audit_checkpoint SET jws = 'x'"),
    ("audit_checkpoint", "DELETE FROM audit_checkpoint"),
])
def test_the_tree_and_its_checkpoints_only_grow(engine: Engine, append: Append, secrets: Secrets, clock: FixedClock,
                                                keyring: KeyRing, table: str, statement: str) -> None:
    append(5)
    assert integrate(engine, secrets, clock) is not None
    before = _count(engine, table)
    assert before > 0
    with pytest.raises(DBAPIError, match="append-only"):
        execute(engine, statement)
    assert _count(engine, table) == before
    append(3)
    clock.advance(seconds=1)
    assert integrate(engine, secrets, clock) is not None  # the integrator itself only ever inserts
    assert _count(engine, table) > before and verify_database(engine).ok
