"""The contribution ledger: which releases each citizen's data went into, and what each earned (issue 6).

Nothing is written per citizen per query. A release advances its (purpose, dataset) counter once and records
the counter's new value (``Release.counter_releases``) and the instant it counts from (``released_at``), see
:mod:`broker.privacy.counters`. With ``R(p, d, t)`` the number of releases of (p, d) counted strictly before
instant t, the releases of purpose p within a consent interval [start, end) are

    Σ over the purpose's datasets d of  R(p, d, end) − R(p, d, start)

two index seeks per dataset and interval, whatever the number of releases or the size of the cohort. A month
is one more cut: the interval is split at each month start and every piece is read the same way.

**Consent intervals.** Each ``given`` record of a consent purpose runs from its ``valid_from`` to the earliest
of: its ``valid_until``; the next record of the pair (withdrawal, pause, renewal, revocation, expiry); the
citizen's erasure (nothing is earned after erasure); the start of the citizen's current restriction (Art 18);
the first release of a later purpose version (a consent to an old version stops counting); and now. A
special-category purpose counts explicit consents only, as the cohort does.

**Earnings.** Each money or voucher return of the purpose declares an exact decimal ``amount`` per release;
a citizen earns releases × amount, in ``Decimal`` throughout (no float ever touches money).

**What "contributed" means.** Releases whose cohort the citizen's consent admitted them to. It over-counts
against the cohort in three cases the counters cannot see: a release where the citizen had no records in the
window, one made while they were over their personal privacy cap, and (for purposes with a minimum age) one
made before they were old enough without a guardian. Paying for eligibility rather than for rows keeps the
ledger free of per-citizen writes and says nothing about anyone's data.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from itertools import pairwise
from typing import Any

from sqlalchemy import DateTime, func, literal, or_, select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from broker.consent.models import ConsentRecord
from broker.consent.states import ConsentState
from broker.identity.models import Citizen
from broker.policy.schema import PAID_KINDS, Policy, Purpose
from broker.privacy.models import Release
from broker.timeutil import as_utc

#: Scalar sub-selects per statement: PostgreSQL allows 1664 target columns, SQLite 2000.
_LOOKUPS_PER_STATEMENT = 500


@dataclass(frozen=True)
class Interval:
    """A span [start, end) during which the citizen's consent admitted them to a purpose's releases."""

    purpose_id: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class MonthLine:
    """Releases of one purpose within the citizen's consent in one calendar month (UTC), and what they earned."""

    month: str  # "2026-03"
    purpose_id: str
    releases: int
    earned: dict[str, Decimal]  # return kind → amount in the return's currency


@dataclass(frozen=True)
class Contributions:
    lines: list[MonthLine]
    currency: str = "EUR"
    totals_by_kind: dict[str, Decimal] = field(default_factory=dict)

    @property
    def releases(self) -> int:
        return sum(line.releases for line in self.lines)

    @property
    def purposes(self) -> list[str]:
        return sorted({line.purpose_id for line in self.lines if line.releases})

    @property
    def total(self) -> Decimal:
        return sum(self.totals_by_kind.values(), Decimal(0))


def per_release(purpose: Purpose) -> dict[str, Decimal]:
    """Return kind → what one release contributed to pays, for the purpose's money and voucher returns."""
    out: dict[str, Decimal] = defaultdict(Decimal)
    for declared in purpose.returns:
        if declared.kind in PAID_KINDS and declared.amount is not None:
            out[str(declared.kind)] += declared.amount
    return dict(out)


def month_key(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def month_cuts(start: datetime, end: datetime) -> list[datetime]:
    """``start``, every month start strictly inside (start, end), and ``end``."""
    cuts = [start]
    year, month = start.year, start.month
    while True:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        boundary = datetime(year, month, 1, tzinfo=UTC)
        if boundary >= end:
            break
        cuts.append(boundary)
    cuts.append(end)
    return cuts


def releases_before(purpose_id: str, dataset_id: str, moment: Any) -> Any:
    """SQL for ``R(p, d, t)``: releases of (p, d) counted strictly before ``moment``; 0 before the first.
    One seek on the (purpose, dataset, released_at) index of the release table."""
    at = col(Release.released_at)
    last = (select(col(Release.counter_releases))
            .where(col(Release.purpose_id) == purpose_id, col(Release.dataset_id) == dataset_id, at < moment)
            .order_by(at.desc(), col(Release.counter_releases).desc())
            .limit(1).scalar_subquery())
    return func.coalesce(last, literal(0))


class ContributionLedger:
    def __init__(self, session: Session, policy: Policy) -> None:
        self.session = session
        self.policy = policy

    # -- intervals ----------------------------------------------------------------------------------------
    def intervals(self, citizen: Citizen, now: datetime) -> list[Interval]:
        records = self.session.exec(select(ConsentRecord).where(ConsentRecord.pseudonym == citizen.pseudonym)
                                    .order_by(col(ConsentRecord.seq))).scalars().all()
        by_purpose: dict[str, list[ConsentRecord]] = defaultdict(list)
        for record in records:
            by_purpose[record.purpose_id].append(record)
        stops = [as_utc(now)]
        for moment in (citizen.erased_at, citizen.restricted_at):
            if moment is not None:
                stops.append(as_utc(moment))
        ceiling = min(stops)
        out: list[Interval] = []
        for purpose_id, chain in by_purpose.items():
            purpose = self.policy.purpose(purpose_id)
            if purpose is None or not purpose.takes_consent:
                continue
            for i, record in enumerate(chain):
                if record.state != ConsentState.given.value or record.valid_until is None:
                    continue
                if purpose.special_category and record.consent_type != "explicit":
                    continue
                ends = [as_utc(record.valid_until), ceiling]
                if i + 1 < len(chain):
                    ends.append(as_utc(chain[i + 1].created_at))
                superseded = self._version_end(purpose, record.purpose_version)
                if superseded is not None:
                    ends.append(superseded)
                start, end = as_utc(record.valid_from), min(ends)
                if end > start:
                    out.append(Interval(purpose_id, start, end))
        return out

    def _version_end(self, purpose: Purpose, version: int) -> datetime | None:
        """When releases of a later version of the purpose began: a consent to ``version`` counts no longer."""
        if version >= purpose.version:
            return None
        first = self.session.scalar(select(func.min(col(Release.released_at))).where(
            col(Release.purpose_id) == purpose.id, col(Release.purpose_version) > version))
        return as_utc(first) if first is not None else None

    # -- the ledger ---------------------------------------------------------------------------------------
    def for_citizen(self, citizen: Citizen, now: datetime) -> Contributions:
        """The citizen's releases and earnings by month and purpose, oldest month first."""
        pieces: list[tuple[str, str, datetime, datetime]] = []  # (month, purpose, start, end)
        for interval in self.intervals(citizen, now):
            cuts = month_cuts(interval.start, interval.end)
            for start, end in pairwise(cuts):
                pieces.append((month_key(start), interval.purpose_id, start, end))
        counts = self._releases_at({(p, t) for _, p, s, e in pieces for t in (s, e)})
        releases: dict[tuple[str, str], int] = defaultdict(int)
        for month, purpose_id, start, end in pieces:
            releases[(month, purpose_id)] += counts[(purpose_id, end)] - counts[(purpose_id, start)]
        lines, totals = [], defaultdict(Decimal)
        for (month, purpose_id), n in sorted(releases.items()):
            if n == 0:
                continue
            purpose = self.policy.purpose(purpose_id)
            earned = {kind: amount * n for kind, amount in per_release(purpose).items()} if purpose else {}
            for kind, amount in earned.items():
                totals[kind] += amount
            lines.append(MonthLine(month, purpose_id, n, earned))
        return Contributions(lines=lines, totals_by_kind=dict(totals))

    def _releases_at(self, points: Iterable[tuple[str, datetime]]) -> dict[tuple[str, datetime], int]:
        """(purpose, t) → releases of the purpose (all its datasets) counted strictly before t."""
        lookups: list[tuple[tuple[str, datetime], Any]] = []
        for purpose_id, moment in sorted(points):
            purpose = self.policy.purpose(purpose_id)
            if purpose is None:
                continue
            bound = literal(moment, type_=DateTime(timezone=True))
            terms = [releases_before(purpose_id, use.dataset, bound) for use in purpose.datasets]
            lookups.append(((purpose_id, moment), sum(terms[1:], terms[0])))
        out: dict[tuple[str, datetime], int] = defaultdict(int)
        for i in range(0, len(lookups), _LOOKUPS_PER_STATEMENT):
            chunk = lookups[i:i + _LOOKUPS_PER_STATEMENT]
            row = self.session.execute(select(*(expr for _, expr in chunk))).one()
            for (key, _), value in zip(chunk, row, strict=True):
                out[key] = int(value or 0)
        return out

    # -- the whole city -----------------------------------------------------------------------------------
    def city_releases(self, now: datetime) -> dict[str, int]:
        """Purpose → Σ over every citizen of the releases within their consent intervals (the sum of every
        citizen's :meth:`for_citizen`, computed in one statement over the consent records, never stored)."""
        consent = [p for p in self.policy.purposes if p.takes_consent]
        if not consent:
            return {}
        intervals = self._city_intervals(consent, now)
        by_purpose = {}
        for purpose in consent:
            terms = [releases_before(purpose.id, use.dataset, intervals.c.end)
                     - releases_before(purpose.id, use.dataset, intervals.c.start) for use in purpose.datasets]
            total = self.session.scalar(
                select(func.coalesce(func.sum(sum(terms[1:], terms[0])), 0))
                .where(intervals.c.purpose_id == purpose.id, intervals.c.end > intervals.c.start))
            by_purpose[purpose.id] = int(total or 0)
        return by_purpose

    def _city_intervals(self, purposes: list[Purpose], now: datetime) -> Any:
        """The same intervals as :meth:`intervals`, for every citizen, as a subquery (purpose_id, start, end)."""
        record, following = ConsentRecord, aliased(ConsentRecord)
        stamp = DateTime(timezone=True)
        far = literal(datetime(9999, 1, 1, tzinfo=UTC), type_=stamp)
        next_record = (select(func.min(following.created_at))
                       .where(following.pseudonym == record.pseudonym, following.purpose_id == record.purpose_id,
                              col(following.seq) > col(record.seq)).scalar_subquery())
        later = aliased(Release)
        version_end = (select(func.min(later.released_at))
                       .where(later.purpose_id == record.purpose_id,
                              col(later.purpose_version) > col(record.purpose_version)).scalar_subquery())
        ends = [col(record.valid_until), literal(as_utc(now), type_=stamp), func.coalesce(next_record, far),
                func.coalesce(col(Citizen.erased_at), far), func.coalesce(col(Citizen.restricted_at), far),
                func.coalesce(version_end, far)]
        least = func.least if self.session.get_bind().dialect.name == "postgresql" else func.min
        special = [p.id for p in purposes if p.special_category]
        conditions = [record.state == ConsentState.given.value, col(record.valid_until).is_not(None),
                      col(record.purpose_id).in_([p.id for p in purposes])]
        if special:
            conditions.append(or_(col(record.purpose_id).not_in(special), record.consent_type == "explicit"))
        return (select(col(record.purpose_id).label("purpose_id"), col(record.valid_from).label("start"),
                       least(*ends).label("end"))
                .join(Citizen, col(Citizen.pseudonym) == col(record.pseudonym))
                .where(*conditions).subquery("intervals"))
