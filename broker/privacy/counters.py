"""Cumulative per-(purpose, dataset) counters of ε and releases (DESIGN §4 "Counters").

Each fresh release advances its (purpose, dataset) counter once and records the counter's new value and the
instant it counts from on the release row. ``C(p, d, t)``, the counter as it stood at instant t, is then the
value recorded by the last release at or before t, and what a citizen was exposed to over a consent interval
is ``C(end) − C(start)``: one write per release, none per citizen, however large the cohort.

For that lookup to be right the instants must be ordered like the counter values, so a release counts from
``max(now, the counter's last instant)``, set in the same UPDATE that takes the counter's row lock: a worker
whose clock lags, or whose request started earlier but committed later, can never slip a release in before one
already counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

from broker.privacy.models import PrivacyCounter, Release
from broker.timeutil import as_utc


@dataclass(frozen=True)
class CounterValue:
    epsilon_micro: int
    releases: int
    released_at: datetime


class Counters:
    def __init__(self, session: Session) -> None:
        self.session = session

    def advance(self, purpose_id: str, dataset_id: str, epsilon_micro: int, now: datetime) -> CounterValue:
        """Add one release of ``epsilon_micro`` to the (purpose, dataset) counter; returns its new value."""
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self.session.execute(insert(PrivacyCounter).values(
            purpose_id=purpose_id, dataset_id=dataset_id, epsilon_micro=0, releases=0, last_released_at=now,
        ).on_conflict_do_nothing())
        last = col(PrivacyCounter.last_released_at)
        row = self.session.execute(
            update(PrivacyCounter)
            .where(col(PrivacyCounter.purpose_id) == purpose_id, col(PrivacyCounter.dataset_id) == dataset_id)
            .values(epsilon_micro=col(PrivacyCounter.epsilon_micro) + epsilon_micro,
                    releases=col(PrivacyCounter.releases) + 1,
                    last_released_at=case((last > now, last), else_=now))
            .returning(col(PrivacyCounter.epsilon_micro), col(PrivacyCounter.releases), last)
            .execution_options(synchronize_session=False)).one()
        return CounterValue(epsilon_micro=int(row[0]), releases=int(row[1]), released_at=as_utc(row[2]))

    def value(self, purpose_id: str, dataset_id: str) -> CounterValue | None:
        row = self.session.get(PrivacyCounter, (purpose_id, dataset_id))
        if row is None:
            return None
        return CounterValue(row.epsilon_micro, row.releases, as_utc(row.last_released_at))


def counter_at(purpose_id: str, dataset_id: str, moment: Any, *, inclusive: bool) -> Any:
    """SQL for ``C(p, d, t)``: the ε counter after the last release counted at ``moment`` (or strictly before
    it, ``inclusive=False``); 0 before the first. One index seek on (purpose, dataset, released_at)."""
    at = col(Release.released_at)
    last = (select(col(Release.counter_epsilon_micro))
            .where(col(Release.purpose_id) == purpose_id, col(Release.dataset_id) == dataset_id,
                   at <= moment if inclusive else at < moment)
            .order_by(at.desc(), col(Release.counter_epsilon_micro).desc())
            .limit(1).scalar_subquery())
    return func.coalesce(last, literal(0))
