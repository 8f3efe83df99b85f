"""``consent_current`` mirrors the newest record of every (purpose, citizen) pair, whoever writes the ledger.

The cohort of every query reads the mirror (broker.privacy.cohort), so a drift would let a withdrawn consent
contribute; the database trigger keeps it, and these tests hold it to the ledger itself.
"""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from sqlalchemy import Engine, func, insert, select, text
from sqlmodel import Session

from broker.consent.ledger import ConsentLedger
from broker.consent.models import ConsentRecord, CurrentConsent
from broker.db import session_scope
from broker.identity.models import Citizen
from broker.keys import Secrets
from broker.policy import Policy
from broker.privacy.cohort import Cohorts
from broker.timeutil import FixedClock
from tests.consent.conftest import make_citizen, other_plain_purpose, plain_purpose

MIRRORED = ("seq", "state", "purpose_version", "valid_until", "guardian_pseudonym", "consent_type")


def newest_by_ledger(session: Session) -> dict[tuple[str, str], tuple]:
    newest = (select(func.max(ConsentRecord.seq)).group_by(ConsentRecord.purpose_id, ConsentRecord.pseudonym))
    rows = session.execute(select(ConsentRecord).where(ConsentRecord.seq.in_(newest))).scalars()
    return {(r.purpose_id, r.pseudonym): tuple(getattr(r, c) for c in MIRRORED) for r in rows}


def mirror(session: Session) -> dict[tuple[str, str], tuple]:
    rows = session.execute(select(CurrentConsent)).scalars()
    return {(r.purpose_id, r.pseudonym): tuple(getattr(r, c) for c in MIRRORED) for r in rows}


def test_every_change_of_mind_moves_the_mirror(session: Session, ledger: ConsentLedger, policy: Policy,
                                               secrets: Secrets, clock: FixedClock) -> None:
    first, second = plain_purpose(policy), other_plain_purpose(policy)
    alice, bob = make_citizen(session, secrets, clock), make_citizen(session, secrets, clock)
    for citizen, purpose, state in [(alice, first, "given"), (bob, first, "given"), (alice, second, "given"),
                                    (alice, first, "withdrawn"), (bob, first, "paused"), (alice, first, "given"),
                                    (bob, second, "refused")]:
        ledger.set_state(citizen, purpose.id, state)
        clock.advance(days=1)
        session.flush()
        assert mirror(session) == newest_by_ledger(session)
    assert len(mirror(session)) == 4
    assert mirror(session)[(first.id, bob.pseudonym)][1] == "paused"


def test_records_written_outside_the_ledger_are_mirrored_too(session: Session, ledger: ConsentLedger,
                                                             policy: Policy, secrets: Secrets,
                                                             clock: FixedClock) -> None:
    """The demo seeder and any bulk import insert records directly: the trigger sees those as well."""
    purpose = plain_purpose(policy)
    citizen = make_citizen(session, secrets, clock)
    given = ledger.set_state(citizen, purpose.id, "given")
    session.flush()
    row = {c.name: getattr(given, c.name) for c in ConsentRecord.__table__.columns if c.name != "seq"}
    session.execute(insert(ConsentRecord), [{**row, "id": str(uuid.uuid4()), "state": "withdrawn",
                                             "previous_id": given.id}])
    assert mirror(session)[(purpose.id, citizen.pseudonym)][1] == "withdrawn"
    assert mirror(session) == newest_by_ledger(session)
    assert session.execute(ledger.valid_consent_pseudonyms(purpose)).all() == []


def test_a_failed_transaction_leaves_the_mirror_as_it_was(engine: Engine, policy: Policy, secrets: Secrets,
                                                          clock: FixedClock) -> None:
    purpose = plain_purpose(policy)
    with session_scope(engine) as session:
        citizen = make_citizen(session, secrets, clock)
        ConsentLedger(session, policy, secrets, clock).set_state(citizen, purpose.id, "given")
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        ConsentLedger(session, policy, secrets, clock).set_state(citizen, purpose.id, "withdrawn")
        session.flush()
        raise RuntimeError("the action's audit write failed")
    with session_scope(engine) as session:
        assert mirror(session)[(purpose.id, citizen.pseudonym)][1] == "given"
        assert mirror(session) == newest_by_ledger(session)


@pytest.mark.parametrize("trigger", ["consent_record_current", "citizen_birth_date_current",
                                     "citizen_inserted_current"])
def test_the_mirror_is_kept_by_the_migrations_triggers(engine: Engine, trigger: str) -> None:
    """The triggers are part of the schema every deployment runs (``db upgrade``), not of the ORM."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            found = conn.execute(text("SELECT count(*) FROM pg_trigger WHERE tgname = :t"), {"t": trigger})
        else:
            found = conn.execute(text("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name = :t"),
                                 {"t": trigger})
        assert found.scalar_one() == 1


def test_the_mirror_follows_the_citizens_birth_date(session: Session, ledger: ConsentLedger, policy: Policy,
                                                    secrets: Secrets, clock: FixedClock) -> None:
    """The age rule of a cohort reads the mirror's birth date: a correction must reach every row at once."""
    first, second = plain_purpose(policy), other_plain_purpose(policy)
    citizen = make_citizen(session, secrets, clock, born=date(1990, 1, 1))
    other = make_citizen(session, secrets, clock, born=date(1970, 1, 1))
    for purpose in (first, second):
        ledger.set_state(citizen, purpose.id, "given")
        ledger.set_state(other, purpose.id, "given")
    session.flush()
    assert birth_dates(session, citizen.pseudonym) == {date(1990, 1, 1)}
    citizen.birth_date = date(2015, 3, 2)
    session.add(citizen)
    session.flush()
    assert birth_dates(session, citizen.pseudonym) == {date(2015, 3, 2)}
    assert birth_dates(session, other.pseudonym) == {date(1970, 1, 1)}
    citizen.birth_date = None
    session.add(citizen)
    session.flush()
    assert birth_dates(session, citizen.pseudonym) == {None}


def birth_dates(session: Session, pseudonym: str) -> set[date | None]:
    rows = session.execute(select(CurrentConsent.birth_date).where(CurrentConsent.pseudonym == pseudonym))
    return set(rows.scalars())


def test_a_citizen_written_after_their_consents_brings_their_birth_date(
        session: Session, ledger: ConsentLedger, policy: Policy, secrets: Secrets, clock: FixedClock) -> None:
    """An import in any order: a minor's consent copied in before the minor must not pass as 'age unknown'."""
    purpose = plain_purpose(policy)
    donor = make_citizen(session, secrets, clock)
    given = ledger.set_state(donor, purpose.id, "given")
    session.flush()
    newcomer = "f" * 64  # the pseudonym of a citizen not written yet
    row = {c.name: getattr(given, c.name) for c in ConsentRecord.__table__.columns if c.name != "seq"}
    session.execute(insert(ConsentRecord), [{**row, "id": str(uuid.uuid4()), "pseudonym": newcomer}])
    assert birth_dates(session, newcomer) == {None}
    born = date(clock.now().year - 10, 1, 1)
    session.execute(insert(Citizen), [{"id": str(uuid.uuid4()), "pseudonym": newcomer, "birth_date": born,
                                        "locale": "fr", "created_at": clock.now()}])
    assert birth_dates(session, newcomer) == {born}
    cohort = Cohorts(session, policy, secrets).select(purpose, clock.now(), 1)
    members = set(session.execute(cohort).scalars())
    assert donor.pseudonym in members and newcomer not in members
