"""Guardianship links: which adult holds parental responsibility for which minor (GDPR Art 8).

The city establishes a link (from the civil registry, or at a desk on seeing a document) and ends it when
responsibility changes hands; the broker never takes a citizen's word for it. A link is *in force* while it
is not ended, both citizens are neither erased nor unknown, and the minor is under civil majority, computed
from the birth date each time it is read, so a link lapses on the eighteenth birthday without a sweep.
Whether the guardian speaks for the minor on one purpose is the ledger's question (the purpose's minimum
age, :mod:`broker.consent.guardians`); this module only says whether the link holds.

Every link and every end is written to the access log in the same transaction, naming both citizens by
pseudonym only.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from sqlmodel import Session, col, select

from broker.audit import AuditEvent, actions
from broker.audit import record as record_audit
from broker.errors import Conflict, InvalidRequest, NotFound
from broker.identity.citizens import age_on
from broker.identity.models import Citizen, Guardianship

ADULT_AGE = 18  # civil majority in France: parental responsibility ends, and only an adult holds it


class Basis(StrEnum):
    registry = "registry"  # the civil registry or school records
    staff = "staff"        # a document checked by city staff


class GuardianshipRefused(InvalidRequest):
    """A link the city may not record: the people named cannot be guardian and ward."""

    code, title = "guardianship-refused", "Guardianship refused"


@dataclass(frozen=True)
class Ward:
    """A minor as their guardian sees them: through the link, never through an identifier of the minor."""

    link: Guardianship
    minor: Citizen


def is_minor(citizen: Citizen, today: date) -> bool:
    return citizen.birth_date is not None and age_on(citizen.birth_date, today) < ADULT_AGE


def is_adult(citizen: Citizen, today: date) -> bool:
    return citizen.birth_date is not None and age_on(citizen.birth_date, today) >= ADULT_AGE


def in_force(link: Guardianship, guardian: Citizen, minor: Citizen, today: date) -> bool:
    return (link.ended_at is None and guardian.erased_at is None and minor.erased_at is None
            and is_adult(guardian, today) and is_minor(minor, today))


class Guardianships:
    """Establishing, ending and reading guardianship links, within the caller's transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def establish(self, guardian: Citizen, minor: Citizen, *, basis: Basis | str, actor: str,
                  now: datetime) -> Guardianship:
        try:
            how = Basis(basis)
        except ValueError:
            raise GuardianshipRefused(f"unknown basis {basis!r}: one of {', '.join(Basis)}") from None
        today = now.date()
        if guardian.id == minor.id:
            raise GuardianshipRefused("a citizen cannot be their own guardian")
        if guardian.erased_at is not None or minor.erased_at is not None:
            raise GuardianshipRefused("an erased citizen can be neither guardian nor ward")
        if not is_adult(guardian, today):
            raise GuardianshipRefused(f"a guardian must be known to be at least {ADULT_AGE}")
        if not is_minor(minor, today):
            raise GuardianshipRefused(f"a ward must be known to be under {ADULT_AGE}")
        if self._open(guardian.id, minor.id) is not None:
            raise Conflict("this guardian is already linked to this minor")
        link = Guardianship(id=str(uuid.uuid4()), guardian_id=guardian.id, minor_id=minor.id, basis=how.value,
                            established_by=actor, since=now)
        self.session.add(link)
        self.session.flush()
        record_audit(self.session, AuditEvent(
            actor=actor, action=actions.GUARDIANSHIP_ESTABLISHED, subject=minor.pseudonym,
            details={"link_id": link.id, "guardian": guardian.pseudonym, "basis": how.value}), now)
        return link

    def end(self, guardian: Citizen, minor: Citizen, *, actor: str, now: datetime) -> Guardianship:
        link = self._open(guardian.id, minor.id)
        if link is None:
            raise NotFound("no open guardianship link between these citizens")
        link.ended_at = now
        link.ended_by = actor
        self.session.add(link)
        self.session.flush()
        record_audit(self.session, AuditEvent(
            actor=actor, action=actions.GUARDIANSHIP_ENDED, subject=minor.pseudonym,
            details={"link_id": link.id, "guardian": guardian.pseudonym}), now)
        return link

    def linked(self, guardian: Citizen, minor: Citizen, today: date) -> bool:
        """Whether ``guardian`` holds parental responsibility for ``minor`` today."""
        link = self._open(guardian.id, minor.id)
        return link is not None and in_force(link, guardian, minor, today)

    def wards(self, guardian: Citizen, today: date) -> list[Ward]:
        """The minors this guardian speaks for today, oldest link first."""
        rows = self.session.exec(
            select(Guardianship, Citizen).join(Citizen, col(Citizen.id) == Guardianship.minor_id)
            .where(Guardianship.guardian_id == guardian.id, col(Guardianship.ended_at).is_(None))
            .order_by(col(Guardianship.since), col(Guardianship.id))).all()
        return [Ward(link, minor) for link, minor in rows if in_force(link, guardian, minor, today)]

    def ward(self, guardian: Citizen, ward_ref: str, today: date) -> Ward:
        """The ward behind ``ward_ref`` if it is one of this guardian's links in force; any other reference,
        someone else's link included, answers exactly like an unknown one."""
        found = next((w for w in self.wards(guardian, today) if w.link.id == ward_ref), None)
        if found is None:
            raise NotFound("no such ward")
        return found

    def links_of(self, citizen: Citizen) -> list[Guardianship]:
        """Every link naming ``citizen`` as guardian or ward, ended ones included, oldest first."""
        return list(self.session.exec(
            select(Guardianship).where((Guardianship.guardian_id == citizen.id)
                                       | (Guardianship.minor_id == citizen.id))
            .order_by(col(Guardianship.since), col(Guardianship.id))).all())

    def _open(self, guardian_id: str, minor_id: str) -> Guardianship | None:
        return self.session.exec(select(Guardianship).where(
            Guardianship.guardian_id == guardian_id, Guardianship.minor_id == minor_id,
            col(Guardianship.ended_at).is_(None))).first()
