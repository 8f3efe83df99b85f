"""The bulk writer on both databases: rows land, dropped indexes come back (even after a failure), and a
SQLite connection returns to the pool with its durable settings."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import Engine, inspect, text

from broker.db import is_sqlite
from broker.demo.loader import BulkWriter, StorageFormat, rebuildable_indexes
from broker.demo.timestamps import to_us
from broker.policy import Policy
from broker.policy.schema import FieldType
from broker.timeutil import FixedClock, as_utc
from broker.vault.tables import table_name, vault_metadata


def _index_names(engine: Engine, policy: Policy) -> set[str]:
    inspector = inspect(engine)
    names = set()
    for dataset in policy.datasets:
        names |= {i["name"] for i in inspector.get_indexes(table_name(dataset.id))}
    return names | {i["name"] for i in inspector.get_indexes("consent_record")}


def _trip_row(storage: StorageFormat, clock: FixedClock, policy: Policy) -> tuple[tuple[str, ...], tuple]:
    trips = policy.dataset("trips")
    when = storage.instants(np.array([to_us(clock.now())]))[0]
    values = {"pseudonym": "p" * 64, "batch_id": "b", trips.time_field: when}
    for f in trips.fields:
        if f.name in values:
            continue
        if f.type is FieldType.category:
            values[f.name] = (f.categories or policy.broker.domains[f.domain or ""])[0]
        else:
            values[f.name] = f.to_fixed(f.lower or 0)
    return tuple(values), tuple(values.values())


def test_rows_land_and_indexes_come_back(engine: Engine, policy: Policy, clock: FixedClock) -> None:
    before = _index_names(engine, policy)
    storage = StorageFormat.for_engine(engine)
    columns, row = _trip_row(storage, clock, policy)
    with BulkWriter(engine, rebuild=rebuildable_indexes(policy)) as writer:
        assert not _index_names(engine, policy) & {i.name for i in rebuildable_indexes(policy)}
        writer.begin()
        writer.insert(table_name("trips"), columns, [row, row])
        writer.commit()
    assert _index_names(engine, policy) == before
    _, tables = vault_metadata(policy)
    with engine.connect() as conn:
        stored = conn.execute(tables["trips"].select()).mappings().all()
        assert len(stored) == 2 and as_utc(stored[0][policy.dataset("trips").time_field]) == clock.now()
        if is_sqlite(engine):
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL again


def test_a_failed_load_rolls_back_and_keeps_the_schema_whole(engine: Engine, policy: Policy,
                                                            clock: FixedClock) -> None:
    before = _index_names(engine, policy)
    columns, row = _trip_row(StorageFormat.for_engine(engine), clock, policy)
    with pytest.raises(RuntimeError), BulkWriter(engine, rebuild=rebuildable_indexes(policy)) as writer:
        writer.begin()
        writer.insert(table_name("trips"), columns, [row])
        raise RuntimeError("generation failed")
    assert _index_names(engine, policy) == before
    with engine.connect() as conn:
        assert conn.execute(text(f"SELECT count(*) FROM {table_name('trips')}")).scalar_one() == 0
