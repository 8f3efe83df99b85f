"""Purpose version bumps and consent expiry: by time at once, and in the chain by the sweep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session

from broker.consent.ledger import ConsentLedger, add_months
from broker.identity.models import Citizen
from broker.keys import Secrets
from broker.policy import Policy
from broker.timeutil import FixedClock, as_utc
from tests.consent.conftest import bumped, make_citizen, plain_purpose


def test_a_version_bump_stops_earlier_consents_at_once_and_asks_again(session: Session, ledger: ConsentLedger,
                                                                      policy: Policy, secrets: Secrets,
                                                                      clock: FixedClock, adult: Citizen) -> None:
    purpose = plain_purpose(policy)
    old = ledger.set_state(adult, purpose.id, "given")
    assert session.exec(ledger.valid_consent_pseudonyms(purpose)).all() == [adult.pseudonym]

    new_policy = bumped(policy, purpose, recipients=[*purpose.recipients, "Université de Lyon"])
    new_purpose = new_policy.purpose(purpose.id)
    after = ConsentLedger(session, new_policy, secrets, clock)
    status = after.current(adult, purpose.id)
    assert (status.state, status.counts, status.reason) == ("requested", False, "purpose-version-changed")
    assert status.record is not None and status.record.id == old.id
    assert session.exec(after.valid_consent_pseudonyms(new_purpose)).all() == []
    overview = {s.purpose_id: s for s in after.overview(adult)}
    assert overview[purpose.id].state == "requested"

    renewed = after.set_state(adult, purpose.id, "given")
    assert (renewed.purpose_version, renewed.notice_id) == (new_purpose.version, f"{purpose.id}@{new_purpose.version}")
    assert renewed.previous_id == old.id
    assert after.current(adult, purpose.id).counts
    assert session.exec(after.valid_consent_pseudonyms(new_purpose)).all() == [adult.pseudonym]


def test_a_consent_to_an_earlier_version_can_still_be_withdrawn(session: Session, ledger: ConsentLedger,
                                                                policy: Policy, secrets: Secrets,
                                                                clock: FixedClock, adult: Citizen) -> None:
    purpose = plain_purpose(policy)
    old = ledger.set_state(adult, purpose.id, "given")
    after = ConsentLedger(session, bumped(policy, purpose), secrets, clock)
    withdrawn = after.set_state(adult, purpose.id, "withdrawn")
    # the withdrawal ends the consent that was given, under the notice the citizen agreed to
    assert (withdrawn.purpose_version, withdrawn.notice_id, withdrawn.previous_id) == (
        old.purpose_version, old.notice_id, old.id)
    assert after.current(adult, purpose.id).state == "requested"


def test_a_refusal_of_an_earlier_version_is_asked_again(session: Session, ledger: ConsentLedger, policy: Policy,
                                                        secrets: Secrets, clock: FixedClock,
                                                        adult: Citizen) -> None:
    purpose = plain_purpose(policy)
    ledger.set_state(adult, purpose.id, "refused")
    after = ConsentLedger(session, bumped(policy, purpose), secrets, clock)
    assert after.current(adult, purpose.id).state == "requested"
    assert after.set_state(adult, purpose.id, "refused").purpose_version == purpose.version + 1


def test_consent_is_valid_for_the_purposes_months(ledger: ConsentLedger, policy: Policy, adult: Citizen,
                                                  clock: FixedClock) -> None:
    purpose = plain_purpose(policy)
    record = ledger.set_state(adult, purpose.id, "given")
    assert as_utc(record.valid_from) == clock.now()
    assert as_utc(record.valid_until) == add_months(clock.now(), purpose.consent_validity_months)


def test_expiry_by_time_counts_at_once_before_any_sweep(session: Session, ledger: ConsentLedger, policy: Policy,
                                                        adult: Citizen, clock: FixedClock) -> None:
    purpose = plain_purpose(policy)
    record = ledger.set_state(adult, purpose.id, "given")
    clock.at = as_utc(record.valid_until) - timedelta(microseconds=1)
    assert ledger.current(adult, purpose.id).counts
    assert session.exec(ledger.valid_consent_pseudonyms(purpose)).all() == [adult.pseudonym]
    clock.at = as_utc(record.valid_until)
    status = ledger.current(adult, purpose.id)
    assert (status.state, status.counts, status.reason) == ("expired", False, "consent-expired")
    assert session.exec(ledger.valid_consent_pseudonyms(purpose)).all() == []
    assert [r.state for r in ledger.history(adult)] == ["given"]


def test_the_sweep_appends_expired_records_once(session: Session, ledger: ConsentLedger, policy: Policy,
                                                secrets: Secrets, adult: Citizen, clock: FixedClock) -> None:
    purpose = plain_purpose(policy)
    renewer = make_citizen(session, secrets, clock)
    given = ledger.set_state(adult, purpose.id, "given")
    ledger.set_state(renewer, purpose.id, "given")
    assert ledger.expire_due() == 0

    clock.advance(days=200)
    ledger.set_state(renewer, purpose.id, "given")  # a renewal pushes the end further
    clock.at = as_utc(given.valid_until) + timedelta(days=1)
    assert ledger.expire_due() == 1
    assert ledger.expire_due() == 0
    expired = ledger.history(adult)[-1]
    assert (expired.state, expired.previous_id, expired.method) == ("expired", given.id, "system")
    assert as_utc(expired.valid_from) == as_utc(given.valid_until)  # dated when it ended, not when swept
    assert ledger.current(renewer, purpose.id).counts
    assert ledger.current(adult, purpose.id).state == "expired"
    assert ledger.set_state(adult, purpose.id, "given").previous_id == expired.id


def test_a_time_expired_consent_can_be_withdrawn_before_the_sweep(ledger: ConsentLedger, policy: Policy,
                                                                  adult: Citizen, clock: FixedClock) -> None:
    purpose = plain_purpose(policy)
    given = ledger.set_state(adult, purpose.id, "given")
    clock.at = as_utc(given.valid_until) + timedelta(days=1)
    assert ledger.set_state(adult, purpose.id, "withdrawn").previous_id == given.id
    assert ledger.expire_due() == 0


@pytest.mark.parametrize(("start", "months", "end"), [
    (datetime(2026, 3, 2, 9, 30, tzinfo=UTC), 12, datetime(2027, 3, 2, 9, 30, tzinfo=UTC)),
    (datetime(2026, 1, 31, tzinfo=UTC), 1, datetime(2026, 2, 28, tzinfo=UTC)),
    (datetime(2027, 11, 30, tzinfo=UTC), 3, datetime(2028, 2, 29, tzinfo=UTC)),
    (datetime(2026, 12, 15, tzinfo=UTC), 24, datetime(2028, 12, 15, tzinfo=UTC)),
])
def test_add_months(start: datetime, months: int, end: datetime) -> None:
    assert add_months(start, months) == end
