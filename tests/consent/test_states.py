"""The consent lifecycle: every transition, allowed and refused, as the ledger applies it."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from sqlmodel import Session

from broker.consent.ledger import ConsentLedger
from broker.consent.states import CITIZEN_STATES, ConsentState
from broker.errors import ConsentRuleViolation, InvalidRequest
from broker.identity.models import Citizen
from broker.keys import Secrets
from broker.policy import Policy, Purpose
from broker.timeutil import FixedClock
from tests.consent.conftest import make_citizen, plain_purpose

S = ConsentState

ALLOWED = {
    (S.requested, S.given), (S.requested, S.refused),
    (S.given, S.given), (S.given, S.paused), (S.given, S.withdrawn),
    (S.paused, S.given), (S.paused, S.withdrawn),
    (S.refused, S.given),
    (S.withdrawn, S.given),
    (S.revoked, S.given), (S.revoked, S.refused),
    (S.expired, S.given), (S.expired, S.refused),
}
IDEMPOTENT = {(S.refused, S.refused), (S.paused, S.paused), (S.withdrawn, S.withdrawn)}


def reach(session: Session, policy: Policy, secrets: Secrets, clock: FixedClock, purpose: Purpose,
          state: ConsentState) -> Citizen:
    """A fresh citizen whose effective state for ``purpose`` is ``state``."""
    citizen = make_citizen(session, secrets, clock)
    ledger = ConsentLedger(session, policy, secrets, clock)
    steps = {
        S.requested: [],
        S.given: [S.given],
        S.refused: [S.refused],
        S.paused: [S.given, S.paused],
        S.withdrawn: [S.given, S.withdrawn],
        S.revoked: [S.given],
        S.expired: [],
    }[state]
    for step in steps:
        ledger.set_state(citizen, purpose.id, step)
    if state is S.revoked:
        ledger.revoke(citizen, purpose.id)
    if state is S.expired:
        long_ago = FixedClock(clock.now() - timedelta(days=31 * (purpose.consent_validity_months + 1)))
        ConsentLedger(session, policy, secrets, long_ago).set_state(citizen, purpose.id, S.given)
        assert ledger.expire_due() >= 1
    assert ledger.current(citizen, purpose.id).state is state
    return citizen


def test_every_citizen_transition(session: Session, policy: Policy, secrets: Secrets, clock: FixedClock) -> None:
    purpose = plain_purpose(policy)
    ledger = ConsentLedger(session, policy, secrets, clock)
    observed, expected = {}, {}
    for start, target in itertools.product(S, sorted(CITIZEN_STATES)):
        citizen = reach(session, policy, secrets, clock, purpose, start)
        before = ledger.current(citizen, purpose.id).record
        expected[start, target] = ("appended" if (start, target) in ALLOWED
                                   else "unchanged" if (start, target) in IDEMPOTENT else "invalid-transition")
        try:
            record = ledger.set_state(citizen, purpose.id, target)
        except ConsentRuleViolation as exc:
            observed[start, target] = exc.rule
            assert ledger.current(citizen, purpose.id).record == before
            continue
        if before is not None and record.id == before.id:
            observed[start, target] = "unchanged"
            continue
        observed[start, target] = "appended"
        assert record.state == target
        assert record.previous_id == (before.id if before is not None else None)
        assert ledger.current(citizen, purpose.id).state is target
    assert observed == expected


@pytest.mark.parametrize("target", ["revoked", "expired", "requested", "agreed"])
def test_citizens_set_only_their_own_states(ledger: ConsentLedger, adult: Citizen, policy: Policy,
                                            target: str) -> None:
    with pytest.raises(InvalidRequest):
        ledger.set_state(adult, plain_purpose(policy).id, target)


def test_controller_revokes_only_a_given_or_paused_consent(session: Session, policy: Policy, secrets: Secrets,
                                                           clock: FixedClock) -> None:
    purpose = plain_purpose(policy)
    ledger = ConsentLedger(session, policy, secrets, clock)
    observed = {}
    for start in S:
        citizen = reach(session, policy, secrets, clock, purpose, start)
        try:
            record = ledger.revoke(citizen, purpose.id)
        except ConsentRuleViolation as exc:
            observed[start] = exc.rule
        else:
            observed[start] = record.state
            assert (record.method, record.expressed_by) == ("controller", "controller")
            assert not ledger.current(citizen, purpose.id).counts
    assert observed == {s: "revoked" if s in (S.given, S.paused) else "invalid-transition" for s in S}


def test_sweep_expires_only_given_consents(session: Session, policy: Policy, secrets: Secrets,
                                           clock: FixedClock) -> None:
    purpose = plain_purpose(policy)
    ledger = ConsentLedger(session, policy, secrets, clock)
    citizens = {start: reach(session, policy, secrets, clock, purpose, start) for start in S}
    later = clock.now() + timedelta(days=31 * (purpose.consent_validity_months + 1))
    assert ledger.expire_due(later) == 1
    for start, citizen in citizens.items():
        history = ledger.history(citizen, purpose.id)
        last = history[-1].state if history else None
        assert last == ("expired" if start is S.given else None if start is S.requested else start.value)
    assert ledger.expire_due(later) == 0
