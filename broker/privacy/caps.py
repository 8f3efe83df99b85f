"""Personal privacy caps: a citizen whose privacy loss this year plus the query's ε would pass their own cap
drops out of the cohort (DESIGN §5). The decision reads ε spent and caps only, never anyone's data.

**Loss.** A citizen's loss this calendar year is bounded by the ε of every release they could have been in:

* releases of a consent purpose during their consent intervals: each ``given`` record runs from its
  ``valid_from`` to the earlier of its ``valid_until`` and the next record of the pair (a withdrawal, a pause,
  a renewal...), cut to this year; the loss of one interval is ``C(end) − C(start)`` summed over the purpose's
  datasets (:func:`broker.privacy.counters.counter_at`), so no per-citizen row is ever written;
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

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, and_, case, false, func, literal, select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from broker.consent.models import ConsentRecord
from broker.consent.states import ConsentState
from broker.identity.models import Citizen
from broker.policy.schema import Policy, Purpose
from broker.privacy.budget import BudgetLedger
from broker.privacy.counters import counter_at
from broker.privacy.epsilon import MICRO, to_micro
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
        # Citizens who might be over: cap below G + ε. Slightly generous at the boundary (the exact test
        # follows), and with the default above the bound it is an index range on privacy_cap.
        might = cap < bound / MICRO + 1e-9 if self.default_cap_micro < bound else \
            and_(col(Citizen.privacy_cap).is_not(None), col(Citizen.privacy_cap) < bound / MICRO + 1e-9)
        candidates = (select(col(Citizen.pseudonym).label("pseudonym"), cap.label("cap"))
                      .where(might, col(Citizen.pseudonym).in_(cohort.with_only_columns(pseudonym)))
                      .subquery("candidates"))
        losses = self._consent_losses(select(candidates.c.pseudonym), at)
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

    def _consent_losses(self, who: Select, at: datetime) -> Any:
        """Per pseudonym in ``who``: ε of consent-purpose releases within their consent intervals this year."""
        record, following = ConsentRecord, aliased(ConsentRecord)
        start_of_year = year_start(at)
        next_record = (select(func.min(following.created_at))
                       .where(following.pseudonym == record.pseudonym, following.purpose_id == record.purpose_id,
                              col(following.seq) > col(record.seq))
                       .scalar_subquery())
        intervals = (
            select(col(record.pseudonym).label("pseudonym"), col(record.purpose_id).label("purpose_id"),
                   case((col(record.valid_from) > start_of_year, col(record.valid_from)),
                        else_=literal(start_of_year, type_=record.__table__.c.valid_from.type)).label("start"),
                   func.coalesce(next_record, col(record.valid_until)).label("following"),
                   col(record.valid_until).label("until"))
            .where(col(record.pseudonym).in_(who), record.state == ConsentState.given.value,
                   col(record.valid_until) > start_of_year, col(record.valid_from) <= at)
            .subquery("intervals"))
        end = case((intervals.c.following < intervals.c.until, intervals.c.following), else_=intervals.c.until)
        by_purpose = {p.id: self._interval_loss(p, intervals.c.start, end)
                      for p in self.policy.purposes if p.takes_consent}
        if not by_purpose:
            return select(intervals.c.pseudonym, literal(0).label("loss")).where(false()).subquery("losses")
        loss = case(by_purpose, value=intervals.c.purpose_id, else_=literal(0))
        return (select(intervals.c.pseudonym, func.sum(case((end > intervals.c.start, loss), else_=0)).label("loss"))
                .group_by(intervals.c.pseudonym).subquery("losses"))

    @staticmethod
    def _interval_loss(purpose: Purpose, start: Any, end: Any) -> Any:
        terms = [counter_at(purpose.id, use.dataset, end, inclusive=True)
                 - counter_at(purpose.id, use.dataset, start, inclusive=False) for use in purpose.datasets]
        return sum(terms[1:], terms[0])
