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

* for every purpose based on consent that uses the dataset, a copy of the citizen's newest consent record for
  it (state, version, validity, guardian, type: :class:`ConsentColumns`), and their birth date, so that the
  cohort of a query is a condition on the same row rather than a join with ``consent_current``.

The database keeps it, whoever writes the records (ingest, the demo seeder, an erasure), in the same
transaction: on SQLite a row trigger merges each inserted record (:func:`merge_assignments`); on PostgreSQL a
statement trigger summarises the whole inserted batch (a ``COPY`` of ten thousand rows fires it once) and
merges the result. A deleted or updated record makes the citizen's row be computed again from their records.
The consent copy follows ``consent_current`` (itself kept by triggers on every consent record and birth-date
change): a row trigger on it updates the citizen's summary rows; a new summary row copies it when created.
The summary is derived data: :func:`install` creates it from the records if it is missing (or was declared
differently), so it can always be rebuilt.

A query with a time window cannot use it, since it covers all of a citizen's records; it gets the same rows
from :func:`summarise` over the records of the window instead, so both paths share one definition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Date,
    DateTime,
    FromClause,
    Integer,
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

from broker.consent.models import CurrentConsent, NewestRecord
from broker.db import MAX_NAME, sql_name
from broker.identity.models import Citizen
from broker.policy.schema import Dataset, FieldType, Policy

SUMMARY_PREFIX = "summary_"


def summary_name(dataset_id: str) -> str:
    return sql_name(SUMMARY_PREFIX, dataset_id)


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


#: consent_current's columns copied into a summary, by the suffix of their copy.
MIRRORED = {"state": "state", "version": "purpose_version", "until": "valid_until",
            "guardian": "guardian_pseudonym", "type": "consent_type"}


@dataclass(frozen=True)
class ConsentColumns:
    """Names of the columns holding the copy of a citizen's newest consent record for one purpose."""

    purpose_id: str
    prefix: str

    @classmethod
    def of(cls, purpose_id: str) -> ConsentColumns:
        # Short enough for the longest suffix, so that the columns of one purpose share one prefix.
        longest = max(len(f"__{suffix}") for suffix in MIRRORED)
        return cls(purpose_id, sql_name("consent__", purpose_id, limit=MAX_NAME - longest))

    def name(self, suffix: str) -> str:
        return f"{self.prefix}__{suffix}"

    def columns(self) -> list[Column]:
        types = {"state": String(16), "version": Integer(), "until": DateTime(timezone=True),
                 "guardian": String(64), "type": String(16)}
        return [Column(self.name(suffix), types[suffix]) for suffix in MIRRORED]


def newest_in(summary: Table, purpose_id: str) -> NewestRecord:
    """The copy of a citizen's newest record for ``purpose_id`` in a summary row; only the pseudonym where the
    summary copies none for it (a purpose not based on consent reads nothing else)."""
    if purpose_id not in summary.info["purposes"]:
        return NewestRecord(summary.c.pseudonym, None, None, None, None, None, None, None)
    names = ConsentColumns.of(purpose_id)
    return NewestRecord(summary.c.pseudonym, None, *(summary.c[names.name(suffix)] for suffix in MIRRORED),
                        summary.c.birth_date)


def consent_purposes(policy: Policy, dataset: Dataset) -> list[str]:
    """The purposes based on consent that use the dataset: those whose consent a summary copies."""
    return [p.id for p in policy.purposes if p.takes_consent and p.use_of(dataset.id) is not None]


def build_summary(dataset: Dataset, metadata: MetaData, purposes: Sequence[str] = ()) -> Table:
    columns: list[Column] = [
        Column("pseudonym", String(64), primary_key=True),
        Column("records", BigInteger, nullable=False),
        Column("latest_second", BigInteger, nullable=False),
    ]
    columns += [Column(latest_column(name), String(64)) for name in category_fields(dataset)]
    for name in numeric_fields(dataset):
        columns += [Column(count_column(name), BigInteger, nullable=False),
                    Column(sum_column(name), BigInteger, nullable=False)]
    if purposes:
        columns.append(Column("birth_date", Date))
        for purpose_id in purposes:
            columns += ConsentColumns.of(purpose_id).columns()
    table = Table(summary_name(dataset.id), metadata, *columns, sqlite_with_rowid=False)
    table.info["purposes"] = list(purposes)
    return table


def record_columns(summary: Table) -> list[str]:
    """The columns computed from the records (everything but the consent copy)."""
    return [c.name for c in summary.columns if not c.name.startswith("consent__") and c.name != "birth_date"]


def with_consents(rows: Select, summary: Table) -> Select:
    """``rows`` (from :func:`summarise`) with the consent copy of :func:`build_summary` joined on: the
    citizen's newest record of each purpose and their birth date, NULL where there is none."""
    base = rows.subquery("summarised")
    columns: list[Any] = [base.c[name] for name in record_columns(summary)]
    joined: Any = base
    purposes = summary.info["purposes"]
    if not purposes:
        return select(*columns)
    citizen = Citizen.__table__.alias("citizen")  # type: ignore[attr-defined]
    joined = joined.outerjoin(citizen, citizen.c.pseudonym == base.c.pseudonym)
    columns.append(citizen.c.birth_date.label("birth_date"))
    for i, purpose_id in enumerate(purposes):
        current = CurrentConsent.__table__.alias(f"current_{i}")  # type: ignore[attr-defined]
        joined = joined.outerjoin(current, (current.c.purpose_id == purpose_id)
                                  & (current.c.pseudonym == base.c.pseudonym))
        names = ConsentColumns.of(purpose_id)
        columns += [current.c[source].label(names.name(suffix)) for suffix, source in MIRRORED.items()]
    return select(*columns).select_from(joined)


def epoch_second(time: Any, dialect: str) -> Any:
    """The instant's second since the epoch, floored: SQLite keeps instants as UTC text, PostgreSQL as
    ``timestamptz``."""
    if dialect == "sqlite":  # the fraction cut off first: SQLite would round it to milliseconds, 0.9995 s up
        return cast(func.strftime("%s", func.substr(time, 1, 19)), BigInteger)
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

    @property
    def purposes(self) -> list[str]:
        return list(self.summary.info["purposes"])

    def _compiled(self, statement: Any) -> str:
        from sqlalchemy.dialects import postgresql, sqlite

        dialect = postgresql.dialect() if self.dialect == "postgresql" else sqlite.dialect()
        return str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))

    def _columns(self, names: list[str] | None = None) -> str:
        return ", ".join(names if names is not None else [c.name for c in self.summary.columns])

    def _upsert_tail(self) -> str:
        assignments = merge_assignments(self.dataset, self.name, self.dialect)
        sets = ", ".join(f"{column} = {expression}" for column, expression in assignments.items())
        return f"ON CONFLICT (pseudonym) DO UPDATE SET {sets}"

    def _rows_from(self, source: FromClause, where: list[Any] | None = None) -> str:
        """Complete summary rows (records and consent copy) of the citizens in ``source``."""
        return self._compiled(with_consents(summarise(source, self.dataset, self.dialect, where=where), self.summary))

    def rebuild(self, pseudonyms: str | None = None) -> list[str]:
        """Summary rows computed again from the records: every citizen's, or those ``pseudonyms`` selects."""
        scope = f" WHERE pseudonym IN ({pseudonyms})" if pseudonyms else ""
        where = [self.records.c.pseudonym.op("IN")(literal_column(f"({pseudonyms})"))] if pseudonyms else None
        return [f"DELETE FROM {self.name}{scope}",
                f"INSERT INTO {self.name} ({self._columns()}) {self._rows_from(self.records, where)}"]

    # -- triggers -------------------------------------------------------------------------------------------
    def trigger(self, event: str) -> str:
        """The name of the trigger (and, on PostgreSQL, of its function) that follows ``event``."""
        return sql_name(self.name, "_", event)

    def _trigger_names(self) -> dict[str, str]:
        """Trigger name → the table it is on."""
        names = {self.trigger(event): self.records.name for event in ("added", "removed", "changed")}
        if self.purposes:
            names[self.trigger("consent")] = CurrentConsent.__tablename__
            if self.dialect == "sqlite":
                names[self.trigger("consent_changed")] = CurrentConsent.__tablename__
                names[self.trigger("filled")] = self.name
        return names

    def drop_triggers(self) -> list[str]:
        if self.dialect == "postgresql":
            return [f"DROP TRIGGER IF EXISTS {name} ON {on}" for name, on in self._trigger_names().items()] + \
                   [f"DROP FUNCTION IF EXISTS {name}()" for name in self._trigger_names()]
        return [f"DROP TRIGGER IF EXISTS {name}" for name in self._trigger_names()]

    def create_triggers(self) -> list[str]:
        return self._postgres_triggers() if self.dialect == "postgresql" else self._sqlite_triggers()

    def _consent_updates(self) -> list[str]:
        """For a row of consent_current (NEW): copy it into the citizen's summary row, if its purpose is one of
        the dataset's (``NEW.purpose_id = '…'`` in each statement, since a trigger may not branch on SQLite)."""
        out = []
        for purpose_id in self.purposes:
            names = ConsentColumns.of(purpose_id)
            sets = ", ".join(f"{names.name(suffix)} = NEW.{source}" for suffix, source in MIRRORED.items())
            out.append(f"UPDATE {self.name} SET {sets}, birth_date = NEW.birth_date "
                       f"WHERE pseudonym = NEW.pseudonym AND NEW.purpose_id = '{purpose_id}'")
        return out

    def _purpose_list(self) -> str:
        return ", ".join(f"'{p}'" for p in self.purposes)

    def _sqlite_triggers(self) -> list[str]:
        """Row triggers: an inserted record is merged into its citizen's row; a deleted or changed one makes
        the citizen's row be computed again from what remains; a new row copies the citizen's consents."""
        dataset, records = self.dataset, self.records.name
        values = ["NEW.pseudonym", "1", f"CAST(strftime('%s', substr(NEW.{dataset.time_field}, 1, 19)) AS INTEGER)"]
        values += [f"NEW.{c}" for c in category_fields(dataset)]
        for name in numeric_fields(dataset):
            values += [f"(NEW.{name} IS NOT NULL)", f"COALESCE(NEW.{name}, 0)"]
        added = (f"CREATE TRIGGER {self.trigger('added')} AFTER INSERT ON {records} BEGIN "
                 f"INSERT INTO {self.name} ({self._columns(record_columns(self.summary))}) "
                 f"VALUES ({', '.join(values)}) {self._upsert_tail()}; END")

        def recompute(row: str) -> str:
            return " ".join(f"{statement};" for statement in self.rebuild(f"SELECT {row}"))

        out = [
            added,
            f"CREATE TRIGGER {self.trigger('removed')} AFTER DELETE ON {records} "
            f"BEGIN {recompute('OLD.pseudonym')} END",
            f"CREATE TRIGGER {self.trigger('changed')} AFTER UPDATE ON {records} BEGIN "
            f"{recompute('OLD.pseudonym')} {recompute('NEW.pseudonym')} END",
        ]
        if not self.purposes:
            return out
        copies = [f"({self._columns([ConsentColumns.of(p).name(s) for s in MIRRORED])}) = "
                  f"(SELECT {', '.join(MIRRORED.values())} FROM consent_current "
                  f"WHERE purpose_id = '{p}' AND pseudonym = NEW.pseudonym)" for p in self.purposes]
        updates = " ".join(f"{u};" for u in self._consent_updates())
        when = f"WHEN NEW.purpose_id IN ({self._purpose_list()})"
        return [
            *out,
            f"CREATE TRIGGER {self.trigger('filled')} AFTER INSERT ON {self.name} BEGIN UPDATE {self.name} SET "
            f"{', '.join(copies)}, birth_date = (SELECT birth_date FROM citizen WHERE pseudonym = NEW.pseudonym) "
            f"WHERE pseudonym = NEW.pseudonym; END",
            f"CREATE TRIGGER {self.trigger('consent')} AFTER INSERT ON consent_current {when} BEGIN {updates} END",
            f"CREATE TRIGGER {self.trigger('consent_changed')} AFTER UPDATE ON consent_current {when} "
            f"BEGIN {updates} END",
        ]

    def _postgres_triggers(self) -> list[str]:
        """Statement triggers over transition tables: one summarising statement per inserted batch (new rows
        copy the citizens' consents in the same statement), and one recomputation per deleting or updating
        statement, whatever the number of rows. A row trigger on consent_current copies each change."""
        records = self.records.name
        added_rows = table("added", *(sql_column(c.name) for c in self.records.columns))
        merge = (f"INSERT INTO {self.name} ({self._columns()}) "
                 f"SELECT * FROM ({self._rows_from(added_rows)}) AS batch ORDER BY pseudonym "
                 f"{self._upsert_tail()}")

        def recompute(scope: str) -> str:
            return "; ".join(self.rebuild(scope))

        out = [
            f"CREATE FUNCTION {self.trigger('added')}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN {merge}; RETURN NULL; END $$",
            f"CREATE TRIGGER {self.trigger('added')} AFTER INSERT ON {records} REFERENCING NEW TABLE AS added "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {self.trigger('added')}()",
            f"CREATE FUNCTION {self.trigger('removed')}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN {recompute('SELECT pseudonym FROM gone')}; RETURN NULL; END $$",
            f"CREATE TRIGGER {self.trigger('removed')} AFTER DELETE ON {records} REFERENCING OLD TABLE AS gone "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {self.trigger('removed')}()",
            f"CREATE FUNCTION {self.trigger('changed')}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN {recompute('SELECT pseudonym FROM gone UNION SELECT pseudonym FROM came')}; RETURN NULL; END $$",
            f"CREATE TRIGGER {self.trigger('changed')} AFTER UPDATE ON {records} "
            f"REFERENCING OLD TABLE AS gone NEW TABLE AS came "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {self.trigger('changed')}()",
        ]
        if not self.purposes:
            return out
        updates = " ".join(f"{u};" for u in self._consent_updates())
        return [
            *out,
            f"CREATE FUNCTION {self.trigger('consent')}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN {updates} RETURN NULL; END $$",
            f"CREATE TRIGGER {self.trigger('consent')} AFTER INSERT OR UPDATE ON consent_current FOR EACH ROW "
            f"WHEN (NEW.purpose_id IN ({self._purpose_list()})) EXECUTE FUNCTION {self.trigger('consent')}()",
        ]


def install(connection: Connection, ddl: SummaryDDL) -> bool:
    """Create the summary if it is missing or declared differently (then fill it from the records), and
    (re)create its triggers. In the caller's transaction. Returns whether the summary was rebuilt."""
    summary = ddl.summary
    inspector = inspect(connection)
    rebuilt = False
    for statement in ddl.drop_triggers():
        connection.exec_driver_sql(statement)
    if inspector.has_table(summary.name):
        have = [c["name"] for c in inspector.get_columns(summary.name)]
        if have != [c.name for c in summary.columns]:  # derived data: dropped and built again
            summary.drop(connection)
    if not inspect(connection).has_table(summary.name):
        summary.create(connection)
        for statement in ddl.rebuild():
            connection.exec_driver_sql(statement)
        rebuilt = True
    for statement in ddl.create_triggers():
        connection.exec_driver_sql(statement)
    return rebuilt
