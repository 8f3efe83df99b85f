"""Vault tables built from ``policies/datasets.yaml``.

Each dataset gets a table ``vault_<id>``: the citizen's pseudonym, the ingest batch, and one column per
declared field. Numbers are fixed-point ``BIGINT`` (value × 10^scale) so SQL sums are exact; categories are
short strings checked against the declared domain at ingest. The tables follow the reviewed policy rather than
hand-written migrations, so :func:`sync_tables` creates what is missing and refuses (never drops) a column
the policy no longer declares: losing data is a decision for a person, not for a deploy. Each table's
per-citizen summary (:mod:`broker.vault.summaries`) is derived data, created and filled here too.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    inspect,
)

from broker.db import sql_name
from broker.policy.schema import Dataset, FieldType, Policy
from broker.vault.summaries import SummaryDDL, build_summary, consent_purposes, install

VAULT_PREFIX = "vault_"


class VaultSchemaMismatch(RuntimeError):
    pass


def table_name(dataset_id: str) -> str:
    return sql_name(VAULT_PREFIX, dataset_id)


def build_table(dataset: Dataset, metadata: MetaData) -> Table:
    columns: list[Column] = [
        Column("id", Integer().with_variant(BigInteger(), "postgresql"), primary_key=True, autoincrement=True),
        Column("pseudonym", String(64), nullable=False),
        Column("batch_id", String(64), nullable=True),
    ]
    for field in dataset.fields:
        if field.type is FieldType.timestamp:
            sql_type = DateTime(timezone=True)
        elif field.type is FieldType.category:
            sql_type = String(64)
        else:
            sql_type = BigInteger()
        columns.append(Column(field.name, sql_type, nullable=field.name != dataset.time_field))
    name = table_name(dataset.id)
    return Table(
        name,
        metadata,
        *columns,
        # Every field after the pseudonym: a query reads its cohort's rows from this index alone, each citizen's
        # rows side by side, instead of one random table read per row (broker.privacy.aggregates).
        Index(sql_name("ix_", name, "_citizen_rows"), "pseudonym", *(f.name for f in dataset.fields)),
        Index(sql_name("ix_", name, "_time"), dataset.time_field),
    )


def vault_metadata(policy: Policy) -> tuple[MetaData, dict[str, Table]]:
    metadata = MetaData()
    tables = {d.id: build_table(d, metadata) for d in policy.datasets}
    return metadata, tables


def summary_tables(policy: Policy) -> dict[str, Table]:
    """Each dataset's per-citizen summary (:mod:`broker.vault.summaries`), by dataset id."""
    metadata = MetaData()
    return {d.id: build_summary(d, metadata, consent_purposes(policy, d)) for d in policy.datasets}


def summary_ddl(policy: Policy, dialect: str) -> list[SummaryDDL]:
    tables, summaries = vault_metadata(policy)[1], summary_tables(policy)
    return [SummaryDDL(d, tables[d.id], summaries[d.id], dialect) for d in policy.datasets]


def sync_tables(engine: Engine, policy: Policy) -> None:
    metadata, tables = vault_metadata(policy)
    inspector = inspect(engine)
    existing = set(inspector.get_table_names())
    problems = []
    for dataset_id, table in tables.items():
        # Before names were kept to 63 characters, SQLite stored a long id's records under its whole name.
        whole = VAULT_PREFIX + dataset_id.replace("-", "_")
        if whole != table.name and whole in existing:
            problems.append(f"{whole} holds the records of {dataset_id!r}, now kept in {table.name}: rename it")
    for table in tables.values():
        if table.name not in existing:
            continue
        have = {c["name"] for c in inspector.get_columns(table.name)}
        want = {c.name for c in table.columns}
        if want - have:
            problems.append(f"{table.name} lacks columns {sorted(want - have)}")
        if have - want:
            problems.append(f"{table.name} has columns the policy no longer declares: {sorted(have - want)}")
    if problems:
        raise VaultSchemaMismatch("; ".join(problems))
    metadata.create_all(engine)
    with engine.begin() as conn:  # create_all adds no index to a table that exists already
        for table in tables.values():
            for index in table.indexes:
                index.create(conn, checkfirst=True)
    with engine.begin() as conn:  # created and filled with their triggers, or not at all
        for ddl in summary_ddl(policy, conn.dialect.name):
            install(conn, ddl)
