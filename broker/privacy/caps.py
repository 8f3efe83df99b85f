"""Personal privacy caps: a citizen whose privacy loss this year plus the query's ε would pass their own cap
drops out of the cohort (DESIGN §5). The decision reads ε spent and caps only, never anyone's data.

**Loss.** A citizen's loss this calendar year is bounded by the ε of every release they could have been in:

* releases of a consent purpose during their consent intervals: each ``given`` record runs from its
  ``valid_from`` to the earlier of its ``valid_until`` and the next record of the pair (a withdrawal, a pause,
  a renewal...), cut to this year; the loss of one interval is ``C(end) − C(start)``, C being the purpose's
  cumulative ε counter (summed over its datasets) as the releases recorded it, so no per-citizen row is ever
  written;
* every release of a purpose not based on consent this year, since those cohorts hold every citizen.

This over-counts, never under-counts: a release the citizen was excluded from (or had no records for, or
fell in a restricted spell, or an old version's consent) still counts, so once excluded a citizen stays
excluded for the year, as the issue asks. Each release is ε-DP for each citizen (one clamped contribution to
one cell), so by sequential composition the true loss is at most this sum.

**Cheap global bound.** Every release this year is charged to exactly one shared budget account of this year,
so ``G`` = the sum of those accounts bounds every citizen's loss. If ``G + ε`` is at most the smallest cap of
anyone, nobody can be excluded and the per-citizen computation is skipped (one indexed ``min`` and one sum
over a few account rows). Otherwise only citizens whose cap is below ``G + ε`` can be over it, and only they
are examined.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, and_, case, false, func, literal, select
from sqlmodel import Session, col

from broker.consent.models import ConsentRecord
from broker.consent.states import ConsentState
from broker.identity.models import Citizen
from broker.policy.schema import Policy
from broker.privacy.budget import BudgetLedger
from broker.privacy.counters import counter_at
from broker.privacy.epsilon import MICRO, to_micro
from broker.privacy.models import Release
from broker.timeutil import as_utc


def year_start(at: datetime) -> datetime:
    return datetime(as_utc(at).year, 1, 1, tzinfo=UTC)


class PersonalCaps:
    def __init__(self, session: Session, policy: Policy) -> None:
        self.session = session
        self.policy = policy

    @property
    def default_cap_micro(self) -> int:
        return to_micro(self.policy.broker.citizen_privacy_cap)

    def smallest_cap_micro(self) -> int:
        lowest = self.session.scalar(select(func.min(col(Citizen.privacy_cap))))
        default = self.default_cap_micro
        return default if lowest is None else min(default, to_micro(float(lowest)))

    def bound_micro(self, at: datetime, epsilon_micro: int) -> int:
        """``G + ε``: the most any citizen's loss can be after this query."""
        return BudgetLedger(self.session, self.policy).spent_in_year(as_utc(at).year) + epsilon_micro

    def over_cap(self, cohort: Select, pseudonym: Any, at: datetime, epsilon_micro: int) -> Select | None:
        """Pseudonyms of ``cohort`` whose loss + ε would pass their cap; None when the global bound shows
        that nobody's can (the common case, which costs nothing per citizen)."""
        bound = self.bound_micro(at, epsilon_micro)
        if bound <= self.smallest_cap_micro():
            return None
        cap = func.coalesce(col(Citizen.privacy_cap), literal(self.policy.broker.citizen_privacy_cap))
        limit = bound / MICRO + 1e-9  # a little generous at the boundary: the exact test in micro-ε follows
        if self.default_cap_micro < bound:
            # Anyone may be over: only the cohort's members need looking at.
            who = col(Citizen.pseudonym).in_(cohort.with_only_columns(pseudonym))
        else:
            # Only citizens who lowered their cap below G + ε: an index range on privacy_cap, whatever the cohort.
            who = and_(col(Citizen.privacy_cap).is_not(None), col(Citizen.privacy_cap) < limit)
        candidates = (select(col(Citizen.pseudonym).label("pseudonym"), cap.label("cap")).where(who)
                      .subquery("candidates"))
        # When anyone may be over, every consent interval is read once rather than member by member.
        losses = self._consent_losses(None if self.default_cap_micro < bound else select(candidates.c.pseudonym),
                                      at)
        public = self._public_loss(at)
        total = func.coalesce(losses.c.loss, 0) + public + epsilon_micro
        return (select(candidates.c.pseudonym)
                .outerjoin(losses, losses.c.pseudonym == candidates.c.pseudonym)
                .where(total > func.round(candidates.c.cap * MICRO)))

    # -- internals ----------------------------------------------------------------------------------------
    def _public_loss(self, at: datetime) -> int:
        """ε released this year by purposes not based on consent: every citizen was in those cohorts."""
        start = year_start(at)
        terms = [counter_at(p.id, use.dataset, at, inclusive=True) - counter_at(p.id, use.dataset, start,
                                                                                 inclusive=False)
                 for p in self.policy.purposes if not p.takes_consent for use in p.datasets]
        if not terms:
            return 0
        return int(self.session.scalar(select(sum(terms[1:], terms[0]))) or 0)

    def _consent_losses(self, who: Select | None, at: datetime) -> Any:
        """Per pseudonym in ``who`` (None: everyone): ε of consent-purpose releases within their consent
        intervals this year. Only purposes with a release this year are read.

        A ``given`` record's interval ends at the next record of the pair (``lead`` over the chain) or at its
        ``valid_until``, whichever comes first. Each purpose's counter this year is a step function with one step
        per release (:meth:`_steps`), written into the statement as a binary search over the release instants,
        so the loss of an interval costs a few comparisons, not index seeks, however many members are checked.
        """
        record = ConsentRecord
        start_of_year = year_start(at)
        instant = record.__table__.c.valid_from.type
        steps = self._steps(at)
        if not steps:  # nothing released this year under a consent purpose: nobody has lost anything
            return select(col(record.pseudonym).label("pseudonym"), literal(0).label("loss")).where(false()) \
                .subquery("losses")
        which = [col(record.purpose_id).in_(list(steps))]
        if who is not None:
            which.append(col(record.pseudonym).in_(who))
        chain = (select(col(record.pseudonym).label("pseudonym"), col(record.purpose_id).label("purpose_id"),
                        col(record.state).label("state"), col(record.valid_from).label("valid_from"),
                        col(record.valid_until).label("until"),
                        func.lead(col(record.created_at)).over(
                            partition_by=[col(record.pseudonym), col(record.purpose_id)],
                            order_by=col(record.seq)).label("following"))
                 .where(*which).subquery("chain"))
        begins = case((chain.c.valid_from > start_of_year, chain.c.valid_from),
                      else_=literal(start_of_year, type_=instant))
        ends = case((and_(chain.c.following.is_not(None), chain.c.following < chain.c.until), chain.c.following),
                    else_=chain.c.until)
        intervals = (select(chain.c.pseudonym, chain.c.purpose_id, begins.label("start"), ends.label("end"))
                     .where(chain.c.state == ConsentState.given.value, chain.c.until > start_of_year,
                            chain.c.valid_from <= at)
                     .subquery("intervals"))
        by_purpose = {pid: _step_value(intervals.c.end, s, inclusive=True)
                      - _step_value(intervals.c.start, s, inclusive=False) for pid, s in steps.items()}
        loss = case(by_purpose, value=intervals.c.purpose_id, else_=literal(0))
        return (select(intervals.c.pseudonym,
                       func.sum(case((intervals.c.end > intervals.c.start, loss), else_=0)).label("loss"))
                .group_by(intervals.c.pseudonym).subquery("losses"))

    def _steps(self, at: datetime) -> dict[str, Steps]:
        """Each consent purpose's counter this year, summed over its datasets: the instant of each release and
        the counter just after it, relative to the year's start, read from the counters the releases recorded."""
        start = year_start(at)
        consent = {p.id for p in self.policy.purposes if p.takes_consent}
        rows = self.session.execute(
            select(Release.purpose_id, Release.dataset_id, Release.released_at, Release.counter_epsilon_micro)
            .where(col(Release.released_at) >= start, col(Release.released_at) <= at,
                   col(Release.purpose_id).in_(consent))
            .order_by(col(Release.released_at), col(Release.counter_epsilon_micro))).all()
        last: dict[tuple[str, str], int] = {}
        for key in {(r.purpose_id, r.dataset_id) for r in rows}:
            last[key] = int(self.session.scalar(select(counter_at(*key, start, inclusive=False))) or 0)
        out: dict[str, Steps] = {}
        for row in rows:
            key = (row.purpose_id, row.dataset_id)
            step = out.setdefault(row.purpose_id, Steps([], []))
            total = (step.cumulative[-1] if step.cumulative else 0) + row.counter_epsilon_micro - last[key]
            last[key] = row.counter_epsilon_micro
            step.instants.append(as_utc(row.released_at))
            step.cumulative.append(total)
        return out


@dataclass
class Steps:
    """A counter as a step function: ``cumulative[i]`` holds from ``instants[i]`` on (both increasing)."""

    instants: list[datetime]
    cumulative: list[int]


def _step_value(moment: Any, steps: Steps, *, inclusive: bool) -> Any:
    """SQL for the counter at ``moment``: the steps at or before it (``inclusive``) or strictly before it."""
    instant = ConsentRecord.__table__.c.valid_from.type  # type: ignore[attr-defined]
    tests = [moment >= literal(t, type_=instant) if inclusive else moment > literal(t, type_=instant)
             for t in steps.instants]

    def passed(lo: int, hi: int) -> Any:  # tests[:lo] hold; find how many of tests[lo:hi] hold too
        if lo == hi:
            return literal(steps.cumulative[lo - 1] if lo else 0)
        mid = (lo + hi) // 2
        return case((tests[mid], passed(mid + 1, hi)), else_=passed(lo, mid))

    return passed(0, len(tests))
