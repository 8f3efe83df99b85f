"""Per-citizen summaries of each vault table, kept by the database: what a query without a time window reads.

A statistic takes one value per citizen (the mean or the sum of their records, :mod:`broker.privacy.aggregates`)
in one cell (the keys of their latest record). Computing that from the records on every query means a
``GROUP BY pseudonym`` over millions of rows; the summary keeps it ready, one row per citizen and dataset
(table ``summary_<dataset>``):

* ``records``: how many records the citizen has;
* ``latest_second`` and ``latest__<field>`` for every category field: their latest record, ordered by
  :func:`latest_order` (the second of its time, then its categories in declared order as text, NULL lowest;
  the greatest wins), so that every choice of group-by keys finds the same record;
* ``n__<field>`` and ``sum__<field>`` for every numeric field: how many of the records hold a value, and the
  exact sum of those values.

The database keeps it, whoever writes the records (ingest, the demo seeder, an erasure), in the same
transaction: on SQLite a row trigger merges each inserted record (:func:`merge_assignments`); on PostgreSQL a
statement trigger summarises the whole inserted batch (a ``COPY`` of ten thousand rows fires it once) and
merges the result. A deleted or updated record makes the citizen's row be computed again from their records.
The summary is derived data: :func:`install` creates it from the records if it is missing (or was declared
differently), so it can always be rebuilt.

A query with a time window cannot use it, since it covers all of a citizen's records; it gets the same rows
from :func:`summarise` over the records of the window instead, so both paths share one definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    FromClause,
    MetaData,
    Select,
    String,
    Table,
    cast,
    func,
    inspect,
    literal,
    literal_column,
    select,
    table,
)
from sqlalchemy import column as sql_column

from broker.policy.schema import Dataset, FieldType

SUMMARY_PREFIX = "summary_"


def summary_name(dataset_id: str) -> str:
    return SUMMARY_PREFIX + dataset_id.replace("-", "_")


def category_fields(dataset: Dataset) -> list[str]:
    return [f.name for f in dataset.fields if f.type is FieldType.category]


def numeric_fields(dataset: Dataset) -> list[str]:
    return [f.name for f in dataset.fields if f.type in (FieldType.integer, FieldType.decimal)]


def latest_column(name: str) -> str:
    return f"latest__{name}"


def count_column(name: str) -> str:
    return f"n__{name}"


def sum_column(name: str) -> str:
    return f"sum__{name}"


def build_summary(dataset: Dataset, metadata: MetaData) -> Table:
    columns: list[Column] = [
        Column("pseudonym", String(64), primary_key=True),
        Column("records", BigInteger, nullable=False),
        Column("latest_second", BigInteger, nullable=False),
    ]
    columns += [Column(latest_column(name), String(64)) for name in category_fields(dataset)]
    for name in numeric_fields(dataset):
        columns += [Column(count_column(name), BigInteger, nullable=False),
                    Column(sum_column(name), BigInteger, nullable=False)]
    # SQLite: the row is the primary key's B-tree, so a cohort member's summary is one lookup, no table read.
    return Table(summary_name(dataset.id), metadata, *columns, sqlite_with_rowid=False)


def epoch_second(time: Any, dialect: str) -> Any:
    """The instant's second since the epoch, floored: SQLite keeps instants as UTC text, PostgreSQL as
    ``timestamptz``."""
    if dialect == "sqlite":
        return cast(func.strftime("%s", time), BigInteger)
    return cast(func.floor(func.date_part("epoch", time)), BigInteger)


def as_text_order(value: Any, dialect: str) -> Any:
    """A category for comparison: NULL as the empty string, bytes order (code points, like Python and
    SQLite), whatever the PostgreSQL database's collation."""
    text = func.coalesce(value, literal(""))
    return text.collate("C") if dialect == "postgresql" else text


def latest_order(second: Any, categories: list[Any], dialect: str) -> list[Any]:
    """Sort keys of "latest record" (all descending: the first row is the latest)."""
    return [second.desc(), *(as_text_order(c, dialect).desc() for c in categories)]


def summarise(records: FromClause, dataset: Dataset, dialect: str, *, where: list[Any] | None = None,
              numeric: list[str] | None = None) -> Select:
    """The summary rows of the citizens in ``records`` (a vault table, a transition table, a filtered
    subquery): one per pseudonym, with the columns of :func:`build_summary` for the ``numeric`` fields asked
    (default: every one)."""
    numeric = numeric_fields(dataset) if numeric is None else numeric
    categories = category_fields(dataset)
    pseudonym = records.c.pseudonym
    second = epoch_second(records.c[dataset.time_field], dialect)
    per_citizen = {"partition_by": pseudonym}
    ranked_columns: list[Any] = [
        pseudonym.label("pseudonym"),
        func.count().over(**per_citizen).label("records"),
        second.label("latest_second"),
        *(records.c[name].label(latest_column(name)) for name in categories),
        func.row_number().over(
            partition_by=pseudonym,
            order_by=latest_order(second, [records.c[name] for name in categories], dialect)).label("rank"),
    ]
    for name in numeric:
        ranked_columns += [
            func.count(records.c[name]).over(**per_citizen).label(count_column(name)),
            cast(func.coalesce(func.sum(records.c[name]).over(**per_citizen), 0), BigInteger)
            .label(sum_column(name)),
        ]
    ranked = select(*ranked_columns).where(*(where or [])).subquery("ranked")
    return select(*(c for c in ranked.c if c.name != "rank")).where(ranked.c.rank == 1)


def merge_assignments(dataset: Dataset, target: str, dialect: str) -> dict[str, str]:
    """``ON CONFLICT DO UPDATE SET`` of a summary row (``target``) with new rows of the same citizen
    (``excluded``): counts and sums add up; the latest record is whichever is later by :func:`latest_order`.
    Every right-hand side reads the row as it was, so the order of the assignments does not matter."""
    categories = category_fields(dataset)
    collate = ' COLLATE "C"' if dialect == "postgresql" else ""

    def key(row: str) -> str:
        parts = [f"{row}.latest_second",
                 *(f"COALESCE({row}.{latest_column(c)}, ''){collate}" for c in categories)]
        return "(" + ", ".join(parts) + ")"

    later = f"{key('excluded')} > {key(target)}"
    out = {"records": f"{target}.records + excluded.records"}
    for name in ["latest_second", *(latest_column(c) for c in categories)]:
        out[name] = f"CASE WHEN {later} THEN excluded.{name} ELSE {target}.{name} END"
    for name in numeric_fields(dataset):
        for column in (count_column(name), sum_column(name)):
            out[column] = f"{target}.{column} + excluded.{column}"
    return out


@dataclass(frozen=True)
class SummaryDDL:
    """The statements that keep one dataset's summary, for one dialect."""

    dataset: Dataset
    records: Table
    summary: Table
    dialect: str

    @property
    def name(self) -> str:
        return self.summary.name

    def _compiled(self, statement: Any) -> str:
        from sqlalchemy.dialects import postgresql, sqlite

        dialect = postgresql.dialect() if self.dialect == "postgresql" else sqlite.dialect()
        return str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))

    def _columns(self) -> str:
        return ", ".join(c.name for c in self.summary.columns)

    def _upsert_tail(self) -> str:
        assignments = merge_assignments(self.dataset, self.name, self.dialect)
        sets = ", ".join(f"{column} = {expression}" for column, expression in assignments.items())
        return f"ON CONFLICT (pseudonym) DO UPDATE SET {sets}"

    def _summarise_from(self, source: FromClause, where: list[Any] | None = None) -> str:
        return self._compiled(summarise(source, self.dataset, self.dialect, where=where))

    def rebuild(self, pseudonyms: str | None = None) -> list[str]:
        """Summary rows computed again from the records: every citizen's, or those ``pseudonyms`` selects."""
        scope = f" WHERE pseudonym IN ({pseudonyms})" if pseudonyms else ""
        where = [self.records.c.pseudonym.op("IN")(literal_column(f"({pseudonyms})"))] if pseudonyms else None
        body = self._summarise_from(self.records, where)
        return [f"DELETE FROM {self.name}{scope}", f"INSERT INTO {self.name} ({self._columns()}) {body}"]

    def drop_triggers(self) -> list[str]:
        table_name = self.records.name
        if self.dialect == "postgresql":
            return [f"DROP TRIGGER IF EXISTS {self.name}_{event} ON {table_name}"
                    for event in ("added", "removed", "changed")] + \
                   [f"DROP FUNCTION IF EXISTS {self.name}_{event}()" for event in ("added", "removed", "changed")]
        return [f"DROP TRIGGER IF EXISTS {self.name}_{event}" for event in ("added", "removed", "changed")]

    def create_triggers(self) -> list[str]:
        return self._postgres_triggers() if self.dialect == "postgresql" else self._sqlite_triggers()

    def _sqlite_triggers(self) -> list[str]:
        """Row triggers: an inserted record is merged into its citizen's row; a deleted or changed one makes
        the citizen's row be computed again from what remains."""
        dataset, records = self.dataset, self.records.name
        values = ["NEW.pseudonym", "1", f"CAST(strftime('%s', NEW.{dataset.time_field}) AS INTEGER)"]
        values += [f"NEW.{c}" for c in category_fields(dataset)]
        for name in numeric_fields(dataset):
            values += [f"(NEW.{name} IS NOT NULL)", f"COALESCE(NEW.{name}, 0)"]
        added = (f"CREATE TRIGGER {self.name}_added AFTER INSERT ON {records} BEGIN "
                 f"INSERT INTO {self.name} ({self._columns()}) VALUES ({', '.join(values)}) "
                 f"{self._upsert_tail()}; END")

        def recompute(row: str) -> str:
            return " ".join(f"{statement};" for statement in self.rebuild(f"SELECT {row}"))

        removed = (f"CREATE TRIGGER {self.name}_removed AFTER DELETE ON {records} BEGIN "
                   f"{recompute('OLD.pseudonym')} END")
        changed = (f"CREATE TRIGGER {self.name}_changed AFTER UPDATE ON {records} BEGIN "
                   f"{recompute('OLD.pseudonym')} {recompute('NEW.pseudonym')} END")
        return [added, removed, changed]

    def _postgres_triggers(self) -> list[str]:
        """Statement triggers over transition tables: one summarising statement per inserted batch, and one
        recomputation per deleting or updating statement, whatever the number of rows."""
        records = self.records.name
        added_rows = table("added", *(sql_column(c.name) for c in self.records.columns))
        merge = (f"INSERT INTO {self.name} ({self._columns()}) "
                 f"SELECT * FROM ({self._summarise_from(added_rows)}) AS batch ORDER BY pseudonym "
                 f"{self._upsert_tail()}")
        def recompute(scope: str) -> str:
            return "; ".join(self.rebuild(scope))

        return [
            f"CREATE FUNCTION {self.name}_added() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN {merge}; RETURN NULL; END $$",
            f"CREATE TRIGGER {self.name}_added AFTER INSERT ON {records} REFERENCING NEW TABLE AS added "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {self.name}_added()",
            f"CREATE FUNCTION {self.name}_removed() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN {recompute('SELECT pseudonym FROM gone')}; RETURN NULL; END $$",
            f"CREATE TRIGGER {self.name}_removed AFTER DELETE ON {records} REFERENCING OLD TABLE AS gone "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {self.name}_removed()",
            f"CREATE FUNCTION {self.name}_changed() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN {recompute('SELECT pseudonym FROM gone UNION SELECT pseudonym FROM came')}; RETURN NULL; END $$",
            f"CREATE TRIGGER {self.name}_changed AFTER UPDATE ON {records} "
            f"REFERENCING OLD TABLE AS gone NEW TABLE AS came "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {self.name}_changed()",
        ]


def install(connection: Connection, dataset: Dataset, records: Table, summary: Table) -> bool:
    """Create the summary if it is missing or declared differently (then fill it from the records), and
    (re)create its triggers. In the caller's transaction. Returns whether the summary was rebuilt."""
    ddl = SummaryDDL(dataset, records, summary, connection.dialect.name)
    inspector = inspect(connection)
    rebuilt = False
    if inspector.has_table(summary.name):
        have = {c["name"] for c in inspector.get_columns(summary.name)}
        if have != {c.name for c in summary.columns}:  # derived data: dropped and built again
            for statement in ddl.drop_triggers():
                connection.exec_driver_sql(statement)
            summary.drop(connection)
    if not inspect(connection).has_table(summary.name):
        summary.create(connection)
        for statement in ddl.rebuild():
            connection.exec_driver_sql(statement)
        rebuilt = True
    for statement in ddl.drop_triggers() + ddl.create_triggers():
        connection.exec_driver_sql(statement)
    return rebuilt

