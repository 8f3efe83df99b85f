"""Reading the ledger (overview, history, records) and its append-only storage."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from broker.consent.ledger import ConsentLedger
from broker.db import session_scope
from broker.errors import NotFound
from broker.identity.models import Citizen
from broker.keys import Secrets
from broker.policy import Policy
from broker.timeutil import FixedClock
from tests.consent.conftest import make_citizen, other_plain_purpose, plain_purpose, special_purpose


def test_overview_lists_every_purpose(ledger: ConsentLedger, policy: Policy, adult: Citizen) -> None:
    given, refused = plain_purpose(policy), other_plain_purpose(policy)
    ledger.set_state(adult, given.id, "given")
    ledger.set_state(adult, refused.id, "refused")
    overview = ledger.overview(adult)
    assert [s.purpose_id for s in overview] == [p.id for p in policy.purposes]
    by_id = {s.purpose_id: s for s in overview}
    assert (by_id[given.id].state, by_id[given.id].counts) == ("given", True)
    assert by_id[given.id].valid_until is not None
    assert (by_id[refused.id].state, by_id[refused.id].counts) == ("refused", False)
    for purpose in policy.purposes:
        status = by_id[purpose.id]
        assert status.legal_basis == purpose.legal_basis
        if not purpose.takes_consent:
            assert (status.state, status.takes_consent, status.counts) == (None, False, False)
        elif purpose.id not in (given.id, refused.id):
            assert (status.state, status.record) == ("requested", None)


def test_history_is_the_chain_of_records(ledger: ConsentLedger, policy: Policy, adult: Citizen) -> None:
    purpose, other = plain_purpose(policy), special_purpose(policy)
    first = ledger.set_state(adult, purpose.id, "given")
    ledger.set_state(adult, other.id, "given", explicit=True)
    paused = ledger.set_state(adult, purpose.id, "paused")
    resumed = ledger.set_state(adult, purpose.id, "given")
    chain = ledger.history(adult, purpose.id)
    assert [r.id for r in chain] == [first.id, paused.id, resumed.id]
    assert [r.previous_id for r in chain] == [None, first.id, paused.id]
    assert len(ledger.history(adult)) == 4


def test_another_citizens_record_is_not_found_like_an_unknown_one(session: Session, ledger: ConsentLedger,
                                                                  policy: Policy, secrets: Secrets,
                                                                  clock: FixedClock, adult: Citizen) -> None:
    record = ledger.set_state(adult, plain_purpose(policy).id, "given")
    assert ledger.get_record(adult, record.id).id == record.id
    neighbour = make_citizen(session, secrets, clock)
    with pytest.raises(NotFound) as theirs:
        ledger.get_record(neighbour, record.id)
    with pytest.raises(NotFound) as unknown:
        ledger.get_record(neighbour, "5b0e8c1e-0000-4000-8000-000000000000")
    assert theirs.value.problem() == unknown.value.problem()


def test_current_answers_by_pseudonym_too(ledger: ConsentLedger, policy: Policy, adult: Citizen) -> None:
    purpose = plain_purpose(policy)
    ledger.set_state(adult, purpose.id, "given")
    assert ledger.current(adult.pseudonym, purpose.id).counts
    assert not ledger.current("f" * 64, purpose.id).counts


@pytest.mark.parametrize("statement", [
    "UPDATE consent_record SET state = 'given' WHERE id = :id",
    "DELETE FROM consent_record WHERE id = :id",
])
def test_records_cannot_be_changed_or_deleted_in_sql(engine: Engine, policy: Policy, secrets: Secrets,
                                                     clock: FixedClock, statement: str) -> None:
    with session_scope(engine) as session:
        citizen = make_citizen(session, secrets, clock)
        ledger = ConsentLedger(session, policy, secrets, clock)
        record_id = ledger.set_state(citizen, plain_purpose(policy).id, "refused").id
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.execute(text(statement), {"id": record_id})
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, state FROM consent_record")).all()
    assert [tuple(r) for r in rows] == [(record_id, "refused")]


def test_two_workers_changing_one_citizen_keep_a_single_chain(engine: Engine, policy: Policy, secrets: Secrets,
                                                              clock: FixedClock) -> None:
    purpose = plain_purpose(policy)
    with session_scope(engine) as session:
        citizen = make_citizen(session, secrets, clock)
    results: list[str | None] = []
    errors: list[BaseException] = []

    def second_worker() -> None:
        try:
            with session_scope(engine) as session:
                ledger = ConsentLedger(session, policy, secrets, clock)
                results.append(ledger.set_state(session.get(Citizen, citizen.id), purpose.id, "withdrawn").previous_id)
        except BaseException as exc:  # reported to the main thread below
            errors.append(exc)

    with session_scope(engine) as session:
        given = ConsentLedger(session, policy, secrets, clock).set_state(session.get(Citizen, citizen.id),
                                                                         purpose.id, "given")
        worker = threading.Thread(target=second_worker)
        worker.start()
        time.sleep(0.3)  # the worker now waits on the citizen's row lock (SQLite: on the write lock)
    worker.join(timeout=30)
    assert not worker.is_alive() and errors == []
    # without the lock the worker would have read "no consent yet" and refused to withdraw, or forked the chain
    assert results == [given.id]
