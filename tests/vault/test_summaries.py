"""The per-citizen summaries the database keeps (:mod:`broker.vault.summaries`), on both databases.

Every test holds the stored summary to one computed here in plain Python from the records the vault holds
(:func:`summary_in_python`): one row per citizen with records, their latest record by second then by every
category field in declared order as text (None as "", the greatest winning), and per numeric field how many
records hold a value and the sum of those values. The writes go through the paths the broker uses: single and
multi-row INSERT statements (on PostgreSQL one statement fires the statement trigger once for the whole
batch), DELETE and UPDATE statements, Art 17 erasure, ``sync_tables`` and the demo seeder's bulk writer.
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, Table, delete, insert, inspect, select, text, update

from broker.db import is_sqlite, make_engine, session_scope
from broker.demo.loader import BulkWriter, StorageFormat
from broker.demo.timestamps import to_us
from broker.identity.citizens import CitizenService
from broker.keys import Secrets
from broker.policy import Policy
from broker.policy.schema import Dataset, FieldType
from broker.rights import erase_citizen
from broker.timeutil import FixedClock, as_utc
from broker.vault.summaries import install, record_columns, summary_name
from broker.vault.tables import (
    VaultSchemaMismatch,
    summary_ddl,
    summary_tables,
    sync_tables,
    table_name,
    vault_metadata,
)
from tests.policy.policy_files import with_ids_renamed

AIR = "air-exposure"  # categories: district, respiratory_symptoms; numbers: pm25, no2, outdoor_minutes
START = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)
TRIGGERS = {f"{summary_name(AIR)}_{event}" for event in ("added", "removed", "changed")}
RUN = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])


# -- the expectation, in plain Python -------------------------------------------------------------------------

def summary_in_python(dataset: Dataset, rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    categories = [f.name for f in dataset.fields if f.type is FieldType.category]
    numeric = [f.name for f in dataset.fields if f.type in (FieldType.integer, FieldType.decimal)]
    by_citizen: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_citizen[row["pseudonym"]].append(row)

    def order(row: dict[str, Any]) -> tuple[Any, ...]:
        second = math.floor(as_utc(row[dataset.time_field]).timestamp())
        return (second, *("" if row[c] is None else row[c] for c in categories))

    out = {}
    for pseudonym, records in by_citizen.items():
        latest = max(records, key=order)
        summary: dict[str, Any] = {"records": len(records), "latest_second": order(latest)[0]}
        summary.update({f"latest__{c}": latest[c] for c in categories})
        for name in numeric:
            values = [r[name] for r in records if r[name] is not None]
            summary[f"n__{name}"] = len(values)
            summary[f"sum__{name}"] = sum(values)
        out[pseudonym] = summary
    return out


# -- the vault and its summary ----------------------------------------------------------------------------------

def records_table(policy: Policy) -> Table:
    return vault_metadata(policy)[1][AIR]


def summary_table(policy: Policy) -> Table:
    return summary_tables(policy)[AIR]


def reading(pseudonym: str, second: int = 0, *, micro: int = 0, district: str | None = "lyon-1",
            symptoms: str | None = None, pm25: int | None = None, no2: int | None = None,
            minutes: int | None = None) -> dict[str, Any]:
    """One air-exposure record as the vault stores it (fixed-point integers, a UTC instant)."""
    return {"pseudonym": pseudonym, "batch_id": None,
            "day": START + timedelta(seconds=second, microseconds=micro), "district": district,
            "respiratory_symptoms": symptoms, "pm25": pm25, "no2": no2, "outdoor_minutes": minutes}


def insert_statement(engine: Engine, policy: Policy, rows: list[dict[str, Any]]) -> None:
    """All ``rows`` in one multi-row INSERT statement (not an executemany)."""
    with engine.begin() as conn:
        conn.execute(insert(records_table(policy)).values(rows))


def insert_one_by_one(engine: Engine, policy: Policy, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        with engine.begin() as conn:
            conn.execute(insert(records_table(policy)).values(row))


def vault_rows(engine: Engine, policy: Policy) -> list[dict[str, Any]]:
    table = records_table(policy)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(table).order_by(table.c.id)).mappings()]


def stored(engine: Engine, policy: Policy) -> dict[str, dict[str, Any]]:
    """The columns computed from the records, by pseudonym (not the copy of the citizen's consents)."""
    table = summary_table(policy)
    columns = [table.c[name] for name in record_columns(table)]
    with engine.connect() as conn:
        rows = conn.execute(select(*columns)).mappings().all()
    return {row["pseudonym"]: {k: v for k, v in row.items() if k != "pseudonym"} for row in rows}


def expected(engine: Engine, policy: Policy) -> dict[str, dict[str, Any]]:
    return summary_in_python(policy.dataset(AIR), vault_rows(engine, policy))  # type: ignore[arg-type]


def assert_summary_holds(engine: Engine, policy: Policy) -> None:
    assert stored(engine, policy) == expected(engine, policy)


def triggers_on(engine: Engine, table: str) -> set[str]:
    with engine.connect() as conn:
        if is_sqlite(engine):
            rows = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t"),
                                {"t": table})
        else:
            rows = conn.execute(text("SELECT tgname FROM pg_trigger WHERE tgrelid = CAST(:t AS regclass) "
                                     "AND NOT tgisinternal"), {"t": table})
        return {r[0] for r in rows}


# -- inserts ------------------------------------------------------------------------------------------------------

def test_inserts_one_by_one_keep_each_citizen_row(engine: Engine, policy: Policy) -> None:
    rows = [reading("a", 0, pm25=1200, no2=3000, minutes=60, symptoms="none"),
            reading("b", 1, district="lyon-4", pm25=800),
            reading("a", 5, district="lyon-2", pm25=1800, minutes=30, symptoms="mild"),
            reading("a", 3, district="lyon-9", no2=100)]
    for row in rows:
        insert_one_by_one(engine, policy, [row])
        assert_summary_holds(engine, policy)
    a = stored(engine, policy)["a"]
    assert (a["records"], a["latest__district"], a["n__pm25"], a["sum__pm25"]) == (3, "lyon-2", 2, 3000)


def test_one_multi_row_statement_summarises_the_whole_batch(engine: Engine, policy: Policy) -> None:
    insert_statement(engine, policy, [reading("a", 0, pm25=100), reading("c", 0, pm25=5)])
    # Several records of one citizen in one statement, merged with the row they already have.
    batch = [reading("a", 2, district="lyon-3", pm25=300), reading("b", 1, no2=7),
             reading("a", 1, district="lyon-5", pm25=200, minutes=10), reading("b", 4, district="lyon-8"),
             reading("a", 2, district="lyon-2", pm25=None)]
    insert_statement(engine, policy, batch)
    assert_summary_holds(engine, policy)
    summary = stored(engine, policy)
    assert summary["a"]["records"] == 4 and summary["a"]["latest__district"] == "lyon-3"
    assert (summary["a"]["n__pm25"], summary["a"]["sum__pm25"]) == (3, 600)
    assert summary["b"]["records"] == 2 and summary["b"]["latest__district"] == "lyon-8"
    assert summary["c"] == {**summary["c"], "records": 1, "sum__pm25": 5}


def test_records_arriving_out_of_time_order_keep_the_latest(engine: Engine, policy: Policy) -> None:
    insert_one_by_one(engine, policy, [reading("a", 60, district="lyon-7")])
    insert_one_by_one(engine, policy, [reading("a", 10, district="lyon-9"), reading("a", 59, district="lyon-8")])
    insert_statement(engine, policy, [reading("a", 0, district="lyon-9"), reading("a", 30, district="lyon-9")])
    assert_summary_holds(engine, policy)
    a = stored(engine, policy)["a"]
    assert (a["records"], a["latest__district"]) == (5, "lyon-7")
    assert a["latest_second"] == math.floor((START + timedelta(seconds=60)).timestamp())


@pytest.mark.parametrize("one_statement", [True, False], ids=["one-statement", "one-by-one"])
def test_the_second_of_a_record_is_floored_not_rounded(engine: Engine, policy: Policy, one_statement: bool) -> None:
    write = insert_statement if one_statement else insert_one_by_one
    # 0.9995 s past the second is still that second: the record of the next second is the later one.
    write(engine, policy, [reading("a", 0, micro=999_500, district="lyon-9"), reading("a", 1, district="lyon-1"),
                           reading("b", 0, micro=999_999, district="lyon-2")])
    assert_summary_holds(engine, policy)
    summary = stored(engine, policy)
    assert (summary["a"]["latest_second"], summary["a"]["latest__district"]) == (START.timestamp() + 1, "lyon-1")
    assert summary["b"]["latest_second"] == START.timestamp()


@pytest.mark.parametrize("one_statement", [True, False], ids=["one-statement", "one-by-one"])
def test_within_one_second_the_categories_decide_and_none_is_lowest(engine: Engine, policy: Policy,
                                                                     one_statement: bool) -> None:
    write = insert_statement if one_statement else insert_one_by_one
    write(engine, policy, [
        # The microsecond never matters; the district (first declared category) does.
        reading("micro", 7, micro=900_000, district="lyon-1"), reading("micro", 7, micro=100, district="lyon-2"),
        # A district beats no district, whatever the symptoms.
        reading("null-district", 7, district=None, symptoms="severe"),
        reading("null-district", 7, district="lyon-1", symptoms=None),
        # Same district: the symptoms (second category) decide, and None loses to any value.
        reading("null-symptoms", 7, district="lyon-3", symptoms=None),
        reading("null-symptoms", 7, district="lyon-3", symptoms="mild"),
        # "severe" > "mild" > "none" as text, not in declared order.
        reading("text", 7, district="lyon-3", symptoms="severe"), reading("text", 7, district="lyon-3",
                                                                           symptoms="none"),
    ])
    assert_summary_holds(engine, policy)
    latest = {p: (s["latest__district"], s["latest__respiratory_symptoms"]) for p, s in stored(engine, policy).items()}
    assert latest == {"micro": ("lyon-2", None), "null-district": ("lyon-1", None),
                      "null-symptoms": ("lyon-3", "mild"), "text": ("lyon-3", "severe")}


def test_null_measures_count_only_values(engine: Engine, policy: Policy) -> None:
    insert_statement(engine, policy, [reading("a", 0, pm25=1000, no2=None), reading("a", 1, pm25=None, no2=None),
                                      reading("a", 2, pm25=-50, no2=None, minutes=0)])
    insert_one_by_one(engine, policy, [reading("b", 0), reading("a", 3, pm25=None, minutes=None)])
    assert_summary_holds(engine, policy)
    summary = stored(engine, policy)
    a, b = summary["a"], summary["b"]
    assert (a["records"], a["n__pm25"], a["sum__pm25"]) == (4, 2, 950)
    assert (a["n__no2"], a["sum__no2"], a["n__outdoor_minutes"], a["sum__outdoor_minutes"]) == (0, 0, 1, 0)
    assert (b["records"], b["n__pm25"], b["sum__pm25"], b["n__no2"]) == (1, 0, 0, 0)


# -- deletes and updates ---------------------------------------------------------------------------------------

def test_erasure_removes_the_citizen_row_and_no_other(engine: Engine, policy: Policy, secrets: Secrets,
                                                      clock: FixedClock) -> None:
    with session_scope(engine) as session:
        citizen = CitizenService(session, secrets).register(
            email=f"{uuid.uuid4().hex}@lyon.example", name="Habitant Test", birth_date=date(1985, 6, 1),
            district="lyon-3", locale="fr", now=clock.now())
        pseudonym, citizen_id = citizen.pseudonym, citizen.id
    insert_statement(engine, policy, [reading(pseudonym, 0, pm25=10), reading(pseudonym, 1, pm25=20),
                                      reading("other", 0, pm25=30)])
    assert set(stored(engine, policy)) == {pseudonym, "other"}
    with session_scope(engine) as session:
        service = CitizenService(session, secrets)
        erase_citizen(session, policy, service.get(citizen_id), clock.now())
    assert set(stored(engine, policy)) == {"other"}
    assert_summary_holds(engine, policy)


def test_deleting_some_records_computes_the_row_again(engine: Engine, policy: Policy) -> None:
    insert_statement(engine, policy, [reading("a", 0, district="lyon-1", pm25=100),
                                      reading("a", 1, district="lyon-2", pm25=200),
                                      reading("a", 2, district="lyon-3", pm25=400),
                                      reading("b", 0, district="lyon-4", pm25=800)])
    table = records_table(policy)
    with engine.begin() as conn:  # the latest record of a, and all of b's in the same statement
        conn.execute(delete(table).where((table.c.district == "lyon-3") | (table.c.pseudonym == "b")))
    assert_summary_holds(engine, policy)
    assert set(stored(engine, policy)) == {"a"}
    a = stored(engine, policy)["a"]
    assert (a["records"], a["latest__district"], a["n__pm25"], a["sum__pm25"]) == (2, "lyon-2", 2, 300)


def test_an_update_computes_both_citizens_again(engine: Engine, policy: Policy) -> None:
    insert_statement(engine, policy, [reading("a", 0, district="lyon-1", pm25=100),
                                      reading("a", 5, district="lyon-2", pm25=200),
                                      reading("b", 1, district="lyon-4", pm25=800)])
    table = records_table(policy)
    with engine.begin() as conn:  # a's latest record moves to b, with another value
        conn.execute(update(table).where(table.c.district == "lyon-2").values(pseudonym="b", pm25=50))
    assert_summary_holds(engine, policy)
    summary = stored(engine, policy)
    assert (summary["a"]["records"], summary["a"]["latest__district"], summary["a"]["sum__pm25"]) == (1, "lyon-1", 100)
    assert (summary["b"]["records"], summary["b"]["latest__district"], summary["b"]["sum__pm25"]) == (2, "lyon-2", 850)
    with engine.begin() as conn:  # a value only, the citizen stays
        conn.execute(update(table).where(table.c.district == "lyon-1").values(pm25=None))
    assert_summary_holds(engine, policy)
    assert (stored(engine, policy)["a"]["n__pm25"], stored(engine, policy)["a"]["sum__pm25"]) == (0, 0)


# -- any mix of writes ---------------------------------------------------------------------------------------------

record = st.fixed_dictionaries({
    "citizen": st.integers(0, 2),
    "second": st.integers(0, 2),                    # few seconds: ties are likely
    "micro": st.integers(0, 999_999),
    "district": st.sampled_from([None, "lyon-1", "lyon-2", "paris-1"]),
    "symptoms": st.sampled_from([None, "none", "mild", "severe"]),
    "pm25": st.none() | st.integers(-1_000, 20_000),
    "no2": st.none() | st.integers(0, 20_000),
})
step = st.one_of(
    st.tuples(st.just("insert"), st.lists(record, min_size=1, max_size=6), st.booleans()),
    st.tuples(st.just("delete"), st.lists(st.integers(0, 40), min_size=1, max_size=3)),
    st.tuples(st.just("update"), st.integers(0, 40), st.integers(0, 2), st.none() | st.integers(0, 5_000)),
)


@RUN
@given(steps=st.lists(step, min_size=1, max_size=8))
def test_any_mix_of_writes_keeps_the_summary_equal_to_the_records(engine: Engine, policy: Policy,
                                                                  steps: list[Any]) -> None:
    # Each example writes its own citizens, so examples sharing one database do not see each other.
    prefix = uuid.uuid4().hex[:8]
    citizens = [f"{prefix}-{i}" for i in range(3)]
    table = records_table(policy)

    def mine() -> list[int]:
        with engine.connect() as conn:
            return list(conn.execute(select(table.c.id).where(table.c.pseudonym.in_(citizens))
                                     .order_by(table.c.id)).scalars())

    for kind, *args in steps:
        if kind == "insert":
            records, one_statement = args
            rows = [reading(citizens[r["citizen"]], r["second"], micro=r["micro"], district=r["district"],
                            symptoms=r["symptoms"], pm25=r["pm25"], no2=r["no2"]) for r in records]
            (insert_statement if one_statement else insert_one_by_one)(engine, policy, rows)
            continue
        ids = mine()
        if not ids:
            continue
        with engine.begin() as conn:
            if kind == "delete":
                conn.execute(delete(table).where(table.c.id.in_({ids[i % len(ids)] for i in args[0]})))
            else:
                position, citizen, pm25 = args
                conn.execute(update(table).where(table.c.id == ids[position % len(ids)])
                             .values(pseudonym=citizens[citizen], pm25=pm25))
    summary = {p: row for p, row in stored(engine, policy).items() if p in citizens}
    rows = [row for row in vault_rows(engine, policy) if row["pseudonym"] in citizens]
    assert summary == summary_in_python(policy.dataset(AIR), rows)  # type: ignore[arg-type]


# -- sync_tables ---------------------------------------------------------------------------------------------------

def test_sync_rebuilds_a_missing_summary_from_the_records(engine: Engine, policy: Policy) -> None:
    insert_statement(engine, policy, [reading("a", 0, pm25=100), reading("a", 1, district="lyon-2", pm25=300),
                                      reading("b", 2, no2=40)])
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {summary_name(AIR)}"))
    sync_tables(engine, policy)
    assert set(stored(engine, policy)) == {"a", "b"}
    assert_summary_holds(engine, policy)
    insert_one_by_one(engine, policy, [reading("a", 9, district="lyon-6", pm25=5)])  # and kept from then on
    assert stored(engine, policy)["a"]["records"] == 3
    assert_summary_holds(engine, policy)


def test_sync_drops_and_rebuilds_a_summary_declared_differently(engine: Engine, policy: Policy) -> None:
    insert_statement(engine, policy, [reading("a", 0, pm25=100), reading("b", 2, no2=40)])
    with engine.begin() as conn:  # a column the declaration does not have, and rows that no longer add up
        conn.execute(text(f"ALTER TABLE {summary_name(AIR)} ADD COLUMN legacy BIGINT"))
        conn.execute(text(f"UPDATE {summary_name(AIR)} SET records = records + 100, sum__pm25 = 0"))
    sync_tables(engine, policy)
    columns = {c["name"] for c in inspect(engine).get_columns(summary_name(AIR))}
    assert columns == {c.name for c in summary_table(policy).columns}
    assert_summary_holds(engine, policy)
    assert triggers_on(engine, table_name(AIR)) == TRIGGERS
    insert_one_by_one(engine, policy, [reading("b", 3, pm25=7)])
    assert_summary_holds(engine, policy)


def test_sync_twice_changes_nothing_and_an_insert_counts_once(engine: Engine, policy: Policy) -> None:
    insert_statement(engine, policy, [reading("a", 0, pm25=100), reading("b", 2, no2=40)])
    before = stored(engine, policy)
    sync_tables(engine, policy)
    sync_tables(engine, policy)
    assert stored(engine, policy) == before
    with engine.begin() as conn:  # a third time, asking whether anything was rebuilt
        assert not any(install(conn, ddl) for ddl in summary_ddl(policy, engine.dialect.name))
    for dataset in policy.datasets:
        assert triggers_on(engine, table_name(dataset.id)) == {
            f"{summary_name(dataset.id)}_{event}" for event in ("added", "removed", "changed")}
    insert_one_by_one(engine, policy, [reading("a", 5, pm25=1), reading("c", 5, pm25=2)])
    insert_statement(engine, policy, [reading("b", 5, pm25=3)])
    summary = stored(engine, policy)
    assert [summary[p]["records"] for p in ("a", "b", "c")] == [2, 2, 1]
    assert_summary_holds(engine, policy)


# -- the demo seeder's bulk writer -----------------------------------------------------------------------------

def bulk_rows(storage: StorageFormat, rows: list[dict[str, Any]]) -> tuple[list[str], list[tuple]]:
    """Rows in the form the bulk writer hands to the driver (instants as the text the database keeps)."""
    columns = list(rows[0])
    instants = storage.instants(np.array([to_us(row["day"]) for row in rows]))
    return columns, [tuple(instant if c == "day" else row[c] for c in columns)
                     for row, instant in zip(rows, instants, strict=True)]


def load_batches() -> list[list[dict[str, Any]]]:
    return [[reading(f"load-{i % 7}", i % 3, micro=i, district=f"lyon-{1 + i % 9}", symptoms=[None, "mild"][i % 2],
                     pm25=None if i % 5 == 0 else 37 * i, no2=i, minutes=i % 4) for i in range(start, start + 40)]
            for start in (0, 40)]


def test_a_bulk_load_leaves_the_summary_a_rebuild_would_give(engine: Engine, policy: Policy) -> None:
    insert_statement(engine, policy, [reading("load-0", 1, district="lyon-9", pm25=5), reading("kept", 0, pm25=9)])
    storage = StorageFormat.for_engine(engine)
    ddl = summary_ddl(policy, engine.dialect.name)
    with BulkWriter(engine, summaries=ddl) as writer:
        # The triggers are dropped for the load and the summaries rebuilt once at the end.
        assert triggers_on(engine, table_name(AIR)) == set()
        for batch in load_batches():
            columns, rows = bulk_rows(storage, batch)
            writer.begin()
            writer.insert(table_name(AIR), columns, rows)
            writer.commit()
    loaded = stored(engine, policy)
    assert loaded == expected(engine, policy)
    assert len(loaded) == 8
    with engine.begin() as conn:
        for summary in ddl:
            for statement in summary.rebuild():
                conn.exec_driver_sql(statement)
    assert stored(engine, policy) == loaded
    assert triggers_on(engine, table_name(AIR)) == TRIGGERS
    insert_one_by_one(engine, policy, [reading("kept", 9, pm25=1)])  # kept again by the triggers
    assert stored(engine, policy)["kept"]["records"] == 2
    assert_summary_holds(engine, policy)


def test_a_failed_bulk_load_leaves_the_summary_whole(engine: Engine, policy: Policy) -> None:
    insert_statement(engine, policy, [reading("kept", 0, pm25=9)])
    storage = StorageFormat.for_engine(engine)
    first, second = load_batches()
    with pytest.raises(RuntimeError), BulkWriter(engine, summaries=summary_ddl(policy, engine.dialect.name)) as w:
        w.begin()
        w.insert(table_name(AIR), *bulk_rows(storage, first))
        w.commit()
        w.begin()
        w.insert(table_name(AIR), *bulk_rows(storage, second))
        raise RuntimeError("generation failed")  # the second batch is rolled back
    assert len(vault_rows(engine, policy)) == 1 + len(first)
    assert_summary_holds(engine, policy)
    assert triggers_on(engine, table_name(AIR)) == TRIGGERS


def test_records_under_a_long_id_s_old_whole_name_are_not_left_behind(tmp_path: Path) -> None:
    """SQLite took names of any length: a table kept under a long id's whole name must be renamed by a person,
    not silently replaced by an empty one under the shortened name."""
    long_data = "b" + "_x" * 31
    policy = with_ids_renamed(tmp_path, {AIR: long_data})
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE vault_{long_data} (id INTEGER PRIMARY KEY)")
    with pytest.raises(VaultSchemaMismatch, match=f"vault_{long_data} holds the records of '{long_data}'"):
        sync_tables(engine, policy)
    assert table_name(long_data) not in inspect(engine).get_table_names()
    engine.dispose()
