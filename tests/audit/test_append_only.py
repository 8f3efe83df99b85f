"""``audit_entry`` is append-only in the database itself; a log tampered with past that guard still fails verify."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from broker.audit.sources import verify_database
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
