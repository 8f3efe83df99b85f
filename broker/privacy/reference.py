"""The reference path: the same query computed end to end in Python and OpenDP's own transformations.

Small data only (tests, audits of a release's method): it reads every row of the dataset and every citizen.
It shares nothing with the pushed-down path but the policy: the cohort comes from the ledger's per-citizen
:meth:`~broker.consent.ledger.ConsentLedger.current` (not from its SQL), the per-citizen reduction is plain
Python, and the totals come from OpenDP transformations over one clamped row per citizen:
``make_count_by_categories`` for the cell counts, ``make_clamp >> make_sum`` per cell for the sums and
``make_quantile_score_candidates`` per cell for quantile scores. Their privacy maps give the sensitivities
the pushed-down path declares, which the tests compare too.

Personal caps are not modelled: the tests run it where no cap can bind.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from broker.consent.ledger import ConsentLedger
from broker.identity.citizens import age_on
from broker.identity.models import Citizen
from broker.keys import Secrets
from broker.policy.schema import Contribution, FieldType, Policy, Purpose
from broker.privacy.mechanisms import opendp, quantile_transformation
from broker.privacy.plan import QueryPlan
from broker.timeutil import FixedClock, as_utc
from broker.vault.tables import vault_metadata


@dataclass
class ReferenceTotals:
    counts: list[int]
    sums: list[int]
    scores: list[list[int]] = field(default_factory=list)
    count_sensitivity: int = 1
    sum_sensitivity: int | None = None
    score_sensitivity: int | None = None
    members: set[str] = field(default_factory=set)


def reference_members(session: Session, policy: Policy, secrets: Secrets, purpose: Purpose, at: datetime) -> set[str]:
    """Pseudonyms whose records may contribute, citizen by citizen (no personal caps)."""
    at = as_utc(at)
    citizens = session.execute(select(Citizen)).scalars().all()
    if not purpose.takes_consent:
        return {c.pseudonym for c in citizens if c.erased_at is None and c.restricted_at is None
                and purpose.status == "active"}
    ledger = ConsentLedger(session, policy, secrets, FixedClock(at))
    minimum = policy.minimum_age(purpose)
    members = set()
    for citizen in citizens:
        status = ledger.current(citizen, purpose.id)
        if not status.counts or status.record is None:
            continue
        age = age_on(citizen.birth_date, at.date()) if citizen.birth_date is not None else None
        old_enough = (age is not None and age >= minimum) or (
            age is None and minimum <= policy.broker.default_minimum_age)
        if not (status.record.guardian_pseudonym or old_enough):
            continue
        if purpose.special_category and status.record.consent_type != "explicit":
            continue
        members.add(citizen.pseudonym)
    return members


def per_citizen(plan: QueryPlan, rows: list[dict[str, Any]]) -> dict[str, tuple[int, int | None]]:
    """pseudonym → (cell index, contribution or None), computed in plain Python from the vault rows.

    The cell is that of the citizen's latest record: by second, then by every category field of the dataset
    in declared order as text (None as ""), the greatest winning. A citizen whose latest record holds a key
    outside its declared values, or who holds no value of the measure, is left out. The contribution is the
    sum, or the mean rounded half up, clamped (:func:`contribution`).
    """
    index = {cell: i for i, cell in enumerate(plan.cells)}
    categories = [f.name for f in plan.dataset.fields if f.type is FieldType.category]
    latest: dict[str, tuple[Any, ...]] = {}
    chosen: dict[str, tuple[Any, ...]] = {}
    values: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        pseudonym = row["pseudonym"]
        order = (math.floor(as_utc(row[plan.dataset.time_field]).timestamp()),
                 *(row[c] if row[c] is not None else "" for c in categories))
        if pseudonym not in latest or order > latest[pseudonym]:
            latest[pseudonym] = order
            chosen[pseudonym] = tuple(row[k.name] for k in plan.keys)
        if plan.measure is not None and row[plan.measure.name] is not None:
            values[pseudonym].append(row[plan.measure.name])
    out: dict[str, tuple[int, int | None]] = {}
    for pseudonym, keys in chosen.items():
        if keys not in index or (plan.measure is not None and not values[pseudonym]):
            continue
        out[pseudonym] = (index[keys], contribution(plan, values[pseudonym]) if plan.measure is not None else None)
    return out


def contribution(plan: QueryPlan, records: list[int]) -> int:
    """The sum, or the mean rounded half up to the unit, of the citizen's values, clamped to [L, U]."""
    if plan.clamp is None:
        raise ValueError("a measured statistic needs clamping bounds")
    low, high = plan.clamp
    total, n = sum(records), len(records)
    if plan.contribution is Contribution.sum:
        return min(max(total, low), high)
    if total < n * low:
        return low
    if total > n * high:
        return high
    return low + (2 * (total - n * low) + n) // (2 * n)


def reference_totals(session: Session, policy: Policy, secrets: Secrets, plan: QueryPlan, purpose: Purpose,
                     at: datetime) -> ReferenceTotals:
    members = reference_members(session, policy, secrets, purpose, at)
    table = vault_metadata(policy)[1][plan.dataset.id]
    rows = []
    for row in session.execute(select(table)).mappings():
        if row["pseudonym"] not in members:
            continue
        moment = as_utc(row[plan.dataset.time_field])
        if plan.window.start is not None and moment < as_utc(plan.window.start):
            continue
        if plan.window.end is not None and moment >= as_utc(plan.window.end):
            continue
        rows.append(dict(row))
    return _through_opendp(plan, per_citizen(plan, rows), members)


def _through_opendp(plan: QueryPlan, citizens: dict[str, tuple[int, int | None]],
                    members: set[str]) -> ReferenceTotals:
    dp = opendp()
    n_cells = len(plan.cells)
    cells = [cell for cell, _ in citizens.values()]
    count_by = dp.t.make_count_by_categories(
        dp.vector_domain(dp.atom_domain(T="i64")), dp.symmetric_distance(), categories=list(range(n_cells)),
        null_category=True, MO="L1Distance<i64>", TOA="i64")
    counted = count_by(cells)
    if counted[-1] != 0:
        raise ValueError("a citizen fell outside every declared cell")
    out = ReferenceTotals(counts=[int(c) for c in counted[:n_cells]], sums=[0] * n_cells,
                          count_sensitivity=int(count_by.map(1)), members=members)
    if plan.measure is None or plan.clamp is None:
        return out
    by_cell: dict[int, list[int]] = defaultdict(list)
    for cell, value in citizens.values():
        by_cell[cell].append(int(value or 0))
    low, high = plan.clamp
    summing = (dp.t.make_clamp(dp.vector_domain(dp.atom_domain(T="i64")), dp.symmetric_distance(), bounds=(low, high))
               >> dp.t.then_sum())
    out.sum_sensitivity = int(summing.map(1))
    out.sums = [int(summing(by_cell[c])) if by_cell[c] else 0 for c in range(n_cells)]
    if plan.candidates:
        scoring = quantile_transformation(plan.candidates, float(plan.quantile or 0.5))
        out.score_sensitivity = int(scoring.map(1))
        out.scores = [[int(s) for s in scoring(by_cell[c])] for c in range(n_cells)]
    return out
