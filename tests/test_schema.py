"""Migrations, vault tables and the append-only consent ledger, on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DBAPIError

from broker.policy import Policy
from broker.schema import SchemaOutOfDate, check_current, head_revision, upgrade_all
from broker.vault.tables import VaultSchemaMismatch, table_name


def test_upgrade_reaches_head_and_is_idempotent(engine: Engine, policy: Policy) -> None:
    check_current(engine)
    upgrade_all(engine, policy)
    check_current(engine)


def test_an_empty_database_is_reported_out_of_date(tmp_path) -> None:
    from broker.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(SchemaOutOfDate, match="consent-broker db upgrade"):
        check_current(engine)
    assert head_revision() is not None


def test_every_declared_dataset_has_a_vault_table(engine: Engine, policy: Policy) -> None:
    tables = set(inspect(engine).get_table_names())
    for dataset in policy.datasets:
        name = table_name(dataset.id)
        assert name in tables
        columns = {c["name"] for c in inspect(engine).get_columns(name)}
        assert {f.name for f in dataset.fields} | {"pseudonym", "batch_id"} <= columns


def test_a_vault_column_the_policy_dropped_is_refused_not_dropped(engine: Engine, policy: Policy) -> None:
    dataset = policy.datasets[0]
    numeric = next(f for f in dataset.fields if f.type.value in ("integer", "decimal"))
    fewer = dataset.model_copy(update={"fields": [f for f in dataset.fields if f is not numeric]})
    changed = policy.model_copy(update={"datasets": [fewer, *policy.datasets[1:]]})
    with pytest.raises(VaultSchemaMismatch, match=numeric.name):
        upgrade_all(engine, changed)
    columns = {c["name"] for c in inspect(engine).get_columns(table_name(dataset.id))}
    assert numeric.name in columns


def test_consent_records_cannot_be_updated_or_deleted(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO notice (id, purpose_id, purpose_version, sha256, body, created_at) "
            "VALUES ('p@1', 'p', 1, 'h', '{}', CURRENT_TIMESTAMP)"))
        conn.execute(text(
            "INSERT INTO consent_record (id, schema_version, pseudonym, purpose_id, purpose_version, state, "
            "created_at, valid_from, method, expressed_by, consent_type, notice_id, language, jurisdiction, "
            "evidence) VALUES ('r1', '1', 'ps', 'p', 1, 'given', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, "
            "'portal', 'self', 'expressed', 'p@1', 'fr', 'FR', 'e')"))
    for statement in ("UPDATE consent_record SET state = 'withdrawn'", "DELETE FROM consent_record"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT state FROM consent_record")).scalar() == "given"
