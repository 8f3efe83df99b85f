"""Aggregation pushed down into SQL: only per-cell integer totals ever leave the database.

One statement per query, the same on SQLite and PostgreSQL except for one expression (:func:`_latest_key`):

1. **Records**: the dataset's rows of cohort members (a semi-join on the cohort's ``SELECT pseudonym``), in
   the window ``[from, to)``, with every group key inside its declared values and the measure present. The
   vault's ``(pseudonym, every field)`` index holds them (:func:`broker.vault.tables.build_table`): SQLite reads
   each member's rows side by side from it without touching the table; PostgreSQL hashes the cohort and scans.
2. **One row per citizen** (``GROUP BY pseudonym``): their cell and their contribution.

   * Cell: the keys of their most recent record, at the resolution of a second; between records of the same
     second, the greatest keys as text (compared key by key). A function of the citizen's own records only,
     and exactly one cell each.
   * Contribution (sum, mean, quantile): the sum S of their n values, or their mean rounded half up to the
     fixed-point unit, ``L + (2(S − nL) + n) div 2n``, in exact integer arithmetic; clamped to [L, U] as the
     field declares. Either way an integer in [L, U]. Clamping the citizen's value rather than each record
     costs one expression per citizen instead of one per record.
3. **One row per cell**: number of citizens and the sum of their contributions (or, for quantiles, the number
   of citizens per candidate bucket, :func:`bucket_of`).

Sensitivity follows from step 2 and holds whatever the data: adding or removing one citizen adds or removes one
row of step 2, so it changes one cell's count by 1 and its sum by at most max(|L|, |U|).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BigInteger, Select, Table, and_, case, cast, func, literal, select
from sqlmodel import Session

from broker.policy.schema import Contribution
from broker.privacy.plan import QueryPlan
from broker.vault.tables import vault_metadata

#: SQLite keeps instants as 'YYYY-MM-DD HH:MM:SS.ffffff' text: the first 19 characters are the second.
_SQLITE_SECOND = 19
_SEPARATOR = "\x1f"  # ASCII unit separator: sorts below every printable character


@dataclass
class Totals:
    """Exact per-cell totals, before any noise. ``buckets[c][b]``: citizens of cell c in quantile bucket b."""

    counts: list[int]
    sums: list[int]
    buckets: list[list[int]] = field(default_factory=list)

    @property
    def citizens(self) -> int:
        return sum(self.counts)


def bucket_of(value: int, candidates: tuple[int, ...]) -> int:
    """Bucket 2j+1 holds values equal to candidate j, bucket 2j those strictly between candidates j−1 and j
    (0: below all, 2k: above all). Then #below(c_j) = Σ buckets[0..2j] and #above(c_j) = Σ buckets[2j+2..]."""
    passed = 0
    for candidate in candidates:
        passed += (value >= candidate) + (value > candidate)
    return passed


def below_above(buckets: list[int], k: int) -> tuple[list[int], list[int]]:
    below = [sum(buckets[: 2 * j + 1]) for j in range(k)]
    above = [sum(buckets[2 * j + 2:]) for j in range(k)]
    return below, above


class Aggregates:
    def __init__(self, session: Session, tables: dict[str, Table]) -> None:
        self.session = session
        self.tables = tables

    @classmethod
    def for_policy(cls, session: Session, policy: Any) -> Aggregates:
        return cls(session, vault_metadata(policy)[1])

    def totals(self, plan: QueryPlan, cohort: Select) -> Totals:
        stmt = self.statement(plan, cohort)
        decode = cell_decoder(plan, self.session.get_bind().dialect.name)
        cells = len(plan.cells)
        counts, sums = [0] * cells, [0] * cells
        buckets = [[0] * (2 * len(plan.candidates) + 1) for _ in range(cells)] if plan.candidates else []
        for row in self.session.execute(stmt):
            cell = decode.get(row.cell)
            if cell is None:  # cannot happen with the keys filtered to their declared values; never counted
                continue
            if plan.candidates:
                buckets[cell][int(row.bucket)] += int(row.citizens)
            counts[cell] += int(row.citizens)
            sums[cell] += int(row.total or 0)
        return Totals(counts=counts, sums=sums, buckets=buckets)

    def statement(self, plan: QueryPlan, cohort: Select) -> Select:
        table = self.tables[plan.dataset.id]
        dialect = self.session.get_bind().dialect.name
        time = table.c[plan.dataset.time_field]
        where = [table.c.pseudonym.in_(cohort)]
        if plan.window.start is not None:
            where.append(time >= plan.window.start)
        if plan.window.end is not None:
            where.append(time < plan.window.end)
        for key in plan.keys:
            where.append(table.c[key.name].in_(key.values))
        measured = plan.measure is not None
        if measured:
            where.append(table.c[plan.measure.name].is_not(None))  # type: ignore[union-attr]

        cell = _latest_key(plan, table, dialect) if plan.keys else literal(0)
        columns: list[Any] = [table.c.pseudonym.label("pseudonym"), cell.label("cell")]
        if measured:
            columns.append(self._contribution(plan, table).label("value"))
        per_citizen = select(*columns).where(and_(*where)).group_by(table.c.pseudonym).subquery("per_citizen")

        outer: list[Any] = [per_citizen.c.cell, func.count().label("citizens")]
        group: list[Any] = [per_citizen.c.cell]
        if measured:
            outer.append(func.sum(per_citizen.c.value).label("total"))
        else:
            outer.append(literal(0).label("total"))
        if plan.candidates:
            bucket = _bucket_expression(per_citizen.c.value, plan.candidates).label("bucket")
            outer.append(bucket)
            group.append(bucket)
        return select(*outer).group_by(*group)

    @staticmethod
    def _contribution(plan: QueryPlan, table: Table) -> Any:
        if plan.measure is None or plan.clamp is None:
            raise ValueError("a measured statistic needs its field and clamping bounds")
        low, high = plan.clamp
        value = table.c[plan.measure.name]
        # PostgreSQL sums bigints as numeric: back to bigint, so that the division below is an integer one.
        n, total = func.count(value), cast(func.sum(value), BigInteger)
        if plan.contribution is Contribution.sum:
            return cast(case((total < low, low), (total > high, high), else_=total), BigInteger)
        # Within [nL, nU] the numerator is non-negative, so integer division floors on both databases.
        rounded = low + (2 * (total - n * low) + n) // (2 * n)
        return cast(case((total < n * low, low), (total > n * high, high), else_=rounded), BigInteger)


def _latest_key(plan: QueryPlan, table: Table, dialect: str) -> Any:
    """The cell of the citizen's most recent record (by second; within a second, the greatest keys as text).

    SQLite keeps instants as fixed-width text, so ``max(second || key1 [|| US || key2])`` orders by second,
    then by the keys as text (the unit separator sorts below any printable character, so key1 is compared
    whole before key2), and the keys are what follows the second. PostgreSQL packs the epoch second and the
    keys' rank in text order into one bigint, whose max is the same record; the cell comes back as that rank.
    """
    time = table.c[plan.dataset.time_field]
    if dialect == "sqlite":
        packed: Any = func.substr(time, 1, _SQLITE_SECOND)
        for i, key in enumerate(plan.keys):
            packed = packed.op("||")(literal(_SEPARATOR)) if i else packed
            packed = packed.op("||")(table.c[key.name])
        return func.substr(func.max(packed), _SQLITE_SECOND + 1)
    ranks = _text_ranks(plan)
    rank: Any = literal(0)
    for key in plan.keys:
        order = {value: i for i, value in enumerate(sorted(key.values))}
        rank = rank * len(key.values) + case(order, value=table.c[key.name])
    second = cast(func.floor(func.date_part("epoch", time)), BigInteger)
    return func.max(second * len(ranks) + rank).op("%")(len(ranks))


def _text_ranks(plan: QueryPlan) -> list[tuple[str, ...]]:
    """Every cell, in the order of its keys as text: the rank PostgreSQL's packing returns."""
    return sorted(plan.cells)


def cell_decoder(plan: QueryPlan, dialect: str) -> dict[Any, int]:
    """From what :func:`_latest_key` returns to the cell's index in :attr:`QueryPlan.cells`."""
    index = {cell: i for i, cell in enumerate(plan.cells)}
    if not plan.keys:
        return {0: 0}
    if dialect == "sqlite":
        return {_SEPARATOR.join(cell): i for cell, i in index.items()}
    return {rank: index[cell] for rank, cell in enumerate(_text_ranks(plan))}


def _bucket_expression(value: Any, candidates: tuple[int, ...]) -> Any:
    """:func:`bucket_of` in SQL: a binary search over the 2k monotone tests ``v >= c_j``, ``v > c_j``."""
    tests = [t for c in candidates for t in (value >= c, value > c)]

    def passed(lo: int, hi: int) -> Any:  # tests[:lo] hold; count how many of tests[lo:hi] hold too
        if lo == hi:
            return literal(lo)
        mid = (lo + hi) // 2
        return case((tests[mid], passed(mid + 1, hi)), else_=passed(lo, mid))

    return passed(0, len(tests))

