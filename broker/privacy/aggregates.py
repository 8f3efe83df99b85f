"""Aggregation pushed down into SQL: only per-cell integer totals ever leave the database.

One statement per query, the same on SQLite and PostgreSQL:

1. **One row per citizen** of the cohort, with their latest record's categories and, per numeric field, the
   number n of their values and their sum S (:mod:`broker.vault.summaries`). Without a time window these rows
   are the summary the database keeps, which also carries a copy of each citizen's newest consent records: the
   cohort is a condition on the same rows (:class:`broker.privacy.cohort.Cohort`), one scan, no join. With a
   window, the same rows are computed from the cohort's records in ``[from, to)`` by
   :func:`broker.vault.summaries.summarise`.
2. **Their cell and contribution.**

   * Cell: the keys of their latest record (by second, then categories as text, the greatest winning; see
     :func:`broker.vault.summaries.latest_order`): a function of the citizen's own records only, exactly one
     cell each. A citizen whose latest record holds a key outside its declared values (a value the policy
     has since removed) is left out, as is one with no value of the measure.
   * Contribution (sum, mean, quantile): S, or their mean rounded half up to the fixed-point unit,
     ``L + (2(S − nL) + n) div 2n``, in exact integer arithmetic; clamped to [L, U] as the field declares.
     Either way an integer in [L, U]. Clamping the citizen's value rather than each record costs one
     expression per citizen instead of one per record.
3. **One row per cell**: number of citizens and the sum of their contributions (or, for quantiles, the number
   of citizens per candidate bucket, :func:`bucket_of`).

Sensitivity follows from step 1 and holds whatever the data: adding or removing one citizen adds or removes one
row of step 1, so it changes one cell's count by 1 and its sum by at most max(|L|, |U|).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BigInteger, FromClause, Select, Table, case, cast, func, literal, select
from sqlmodel import Session

from broker.policy.schema import Contribution
from broker.privacy.cohort import Cohort
from broker.privacy.plan import QueryPlan
from broker.vault.summaries import count_column, latest_column, newest_in, sum_column, summarise
from broker.vault.tables import summary_tables, vault_metadata


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
    def __init__(self, session: Session, tables: dict[str, Table], summaries: dict[str, Table]) -> None:
        self.session = session
        self.tables = tables
        self.summaries = summaries

    @classmethod
    def for_policy(cls, session: Session, policy: Any) -> Aggregates:
        return cls(session, vault_metadata(policy)[1], summary_tables(policy))

    def totals(self, plan: QueryPlan, cohort: Cohort) -> Totals:
        cells = len(plan.cells)
        counts, sums = [0] * cells, [0] * cells
        buckets = [[0] * (2 * len(plan.candidates) + 1) for _ in range(cells)] if plan.candidates else []
        for row in self.session.execute(self.statement(plan, cohort)):
            cell = int(row.cell)
            if plan.candidates:
                buckets[cell][int(row.bucket)] += int(row.citizens)
            counts[cell] += int(row.citizens)
            sums[cell] += int(row.total or 0)
        return Totals(counts=counts, sums=sums, buckets=buckets)

    def per_citizen(self, plan: QueryPlan, cohort: Cohort) -> tuple[FromClause, list[Any]]:
        """Step 1: the cohort's summary rows, and the conditions that pick them."""
        if plan.window.start is None and plan.window.end is None:
            summary = self.summaries[plan.dataset.id]
            return summary, cohort.rules(newest_in(summary, cohort.purpose_id))
        records = self.tables[plan.dataset.id]
        time = records.c[plan.dataset.time_field]
        where = [records.c.pseudonym.in_(cohort.members)]
        if plan.window.start is not None:
            where.append(time >= plan.window.start)
        if plan.window.end is not None:
            where.append(time < plan.window.end)
        numeric = [plan.measure.name] if plan.measure is not None else []
        dialect = self.session.get_bind().dialect.name
        return summarise(records, plan.dataset, dialect, where=where, numeric=numeric).subquery("summary"), []

    def statement(self, plan: QueryPlan, cohort: Cohort) -> Select:
        rows, where = self.per_citizen(plan, cohort)
        cell: Any = literal(0)
        for key, stride in zip(plan.keys, plan.strides(), strict=True):
            latest = rows.c[latest_column(key.name)]
            where.append(latest.in_(key.values))
            cell = cell + case({value: i * stride for i, value in enumerate(key.values)}, value=latest)
        columns: list[Any] = [cell.label("cell")]
        if plan.measure is not None:
            n, total = rows.c[count_column(plan.measure.name)], rows.c[sum_column(plan.measure.name)]
            where.append(n > 0)
            columns.append(self._contribution(plan, n, total).label("value"))
        citizens = select(*columns).select_from(rows).where(*where).subquery("citizens")

        outer: list[Any] = [citizens.c.cell, func.count().label("citizens")]
        group: list[Any] = [citizens.c.cell]
        outer.append(func.sum(citizens.c.value).label("total") if plan.measure is not None
                     else literal(0).label("total"))
        if plan.candidates:
            bucket = _bucket_expression(citizens.c.value, plan.candidates).label("bucket")
            outer.append(bucket)
            group.append(bucket)
        return select(*outer).group_by(*group)

    @staticmethod
    def _contribution(plan: QueryPlan, n: Any, total: Any) -> Any:
        """The citizen's clamped sum or rounded mean, from the number ``n`` > 0 of their values and their sum."""
        if plan.clamp is None:
            raise ValueError("a measured statistic needs its clamping bounds")
        low, high = plan.clamp
        if plan.contribution is Contribution.sum:
            return cast(case((total < low, low), (total > high, high), else_=total), BigInteger)
        # Within [nL, nU] the numerator is non-negative, so integer division floors on both databases.
        rounded = low + (2 * (total - n * low) + n) // (2 * n)
        return cast(case((total < n * low, low), (total > n * high, high), else_=rounded), BigInteger)


def _bucket_expression(value: Any, candidates: tuple[int, ...]) -> Any:
    """:func:`bucket_of` in SQL: a binary search over the 2k monotone tests ``v >= c_j``, ``v > c_j``."""
    tests = [t for c in candidates for t in (value >= c, value > c)]

    def passed(lo: int, hi: int) -> Any:  # tests[:lo] hold; count how many of tests[lo:hi] hold too
        if lo == hi:
            return literal(lo)
        mid = (lo + hi) // 2
        return case((tests[mid], passed(mid + 1, hi)), else_=passed(lo, mid))

    return passed(0, len(tests))

