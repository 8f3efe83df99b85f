"""The cohort of a query: the citizens whose records may contribute to it, as one SQL ``SELECT pseudonym``.

* A purpose based on consent counts the citizens whose consent counts now: the ledger's own statement
  (:meth:`broker.consent.ledger.ConsentLedger.valid_consent_pseudonyms`: newest record of the pair ``given``,
  for the current version, still valid, citizen neither restricted nor erased), read from the mirror of newest
  records the database keeps (:class:`broker.consent.models.CurrentConsent`), one primary-key range. Two of the
  ledger's write-time rules are checked again here, at read time, because a record may come from a bulk import
  or from before a rule changed, and a predicate on the mirror's columns costs nothing: under the purpose's
  minimum age only a consent given through a guardian counts (Art 8), and a special-category purpose counts
  only explicit consents (Art 9(2)(a)).
* A purpose on another legal basis (e.g. a public task, Art 6(1)(e)) is never served through consent: its
  cohort is every citizen neither erased nor restricted (Art 18 restricts all processing, whatever the basis).
* Either way, citizens over their personal cap drop out (:mod:`broker.privacy.caps`).

The rules are written once, on :class:`~broker.consent.models.NewestRecord`: applied to ``consent_current`` they
give the ``SELECT pseudonym`` above; applied to a vault summary's copy of the newest records they pick the
members' rows directly (:class:`Cohort`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, false, or_, select
from sqlmodel import Session, col

from broker.consent.ledger import ConsentLedger
from broker.consent.models import CurrentConsent, NewestRecord
from broker.db import not_among
from broker.identity.models import Citizen
from broker.keys import Secrets
from broker.policy.schema import Policy, Purpose
from broker.privacy.caps import PersonalCaps
from broker.timeutil import FixedClock, as_utc


def born_on_or_before(today: date, years: int) -> date:
    """The latest birth date of someone at least ``years`` old on ``today`` (29 February → 28th)."""
    year = today.year - years
    try:
        return today.replace(year=year)
    except ValueError:
        return today.replace(year=year, day=28)


@dataclass(frozen=True)
class Cohort:
    """Who may contribute to one release, in the two forms the aggregation reads: a ``SELECT pseudonym``, and
    the same rules as conditions on any row carrying a copy of the citizen's newest consent record (a vault
    summary, :mod:`broker.vault.summaries`), which spares joining the cohort to the rows."""

    purpose_id: str
    members: Select
    rules: Callable[[NewestRecord], list[Any]]


class Cohorts:
    def __init__(self, session: Session, policy: Policy, secrets: Secrets) -> None:
        self.session = session
        self.policy = policy
        self.secrets = secrets

    def cohort(self, purpose: Purpose, at: datetime, epsilon_micro: int) -> Cohort:
        """The cohort at ``at`` for a release of ``epsilon_micro``."""
        base, pseudonym = self.before_caps(purpose, at)
        over = PersonalCaps(self.session, self.policy).over_cap(base, pseudonym, at, epsilon_micro)
        if over is None:
            return Cohort(purpose.id, base, lambda newest: self.conditions(purpose, at, newest))

        def rules(newest: NewestRecord) -> list[Any]:
            return [*self.conditions(purpose, at, newest), not_among(self.session, newest.pseudonym, over)]

        return Cohort(purpose.id, base.where(not_among(self.session, pseudonym, over)), rules)

    def select(self, purpose: Purpose, at: datetime, epsilon_micro: int) -> Select:
        """``SELECT pseudonym`` of the cohort at ``at`` for a release of ``epsilon_micro``."""
        return self.cohort(purpose, at, epsilon_micro).members

    def before_caps(self, purpose: Purpose, at: datetime) -> tuple[Select, Any]:
        """The cohort before personal caps, and its pseudonym column."""
        if not purpose.takes_consent:
            stmt = select(col(Citizen.pseudonym)).where(col(Citizen.restricted_at).is_(None),
                                                        col(Citizen.erased_at).is_(None))
            if purpose.status != "active":
                stmt = stmt.where(false())
            return stmt, col(Citizen.pseudonym)
        stmt = select(col(CurrentConsent.pseudonym)).where(*self.conditions(purpose, at, NewestRecord.of_mirror()))
        return stmt, col(CurrentConsent.pseudonym)

    def conditions(self, purpose: Purpose, at: datetime, newest: NewestRecord) -> list[Any]:
        """Who counts before personal caps, on ``newest`` (only its pseudonym is read for a purpose not based
        on consent)."""
        if not purpose.takes_consent:
            blocked = select(col(Citizen.pseudonym)).where(or_(col(Citizen.restricted_at).is_not(None),
                                                               col(Citizen.erased_at).is_not(None)))
            rules = [not_among(self.session, newest.pseudonym, blocked)]
            return rules if purpose.status == "active" else [*rules, false()]
        ledger = ConsentLedger(self.session, self.policy, self.secrets, FixedClock(as_utc(at)))
        rules = ledger.counting(purpose, newest, at)
        minimum = self.policy.minimum_age(purpose)
        old_enough = [newest.birth_date <= born_on_or_before(as_utc(at).date(), minimum)]
        if minimum <= self.policy.broker.default_minimum_age:
            # An unknown birth date passes where the portal's own age floor already covers it (see guardians).
            old_enough.append(newest.birth_date.is_(None))
        rules.append(or_(newest.guardian_pseudonym.is_not(None), *old_enough))
        if purpose.special_category:
            rules.append(newest.consent_type == "explicit")
        return rules
