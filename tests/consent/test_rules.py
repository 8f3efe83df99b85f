"""The GDPR rules the ledger enforces, each with its stable rule code."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
from sqlmodel import Session

from broker.consent.ledger import ConsentLedger
from broker.errors import ConsentRuleViolation, InvalidRequest, NotFound
from broker.identity.citizens import CitizenErased, CitizenService
from broker.identity.guardianship import Guardianships
from broker.identity.models import Citizen
from broker.keys import Secrets
from broker.policy import Policy
from broker.timeutil import FixedClock
from tests.consent.conftest import (
    born_years_ago,
    link,
    make_citizen,
    non_consent_purpose,
    other_plain_purpose,
    plain_purpose,
    special_purpose,
    with_purpose,
)


def rule_of(call: Callable[..., object], *args: object, **kwargs: object) -> str:
    with pytest.raises(ConsentRuleViolation) as caught:
        call(*args, **kwargs)
    return caught.value.rule


def test_withdrawal_is_one_call_exactly_like_giving(ledger: ConsentLedger, adult: Citizen, policy: Policy) -> None:
    purpose = plain_purpose(policy)
    given = ledger.set_state(adult, purpose.id, "given")
    assert ledger.current(adult, purpose.id).counts
    withdrawn = ledger.set_state(adult, purpose.id, "withdrawn")
    assert (withdrawn.state, withdrawn.previous_id, withdrawn.method) == ("withdrawn", given.id, given.method)
    assert not ledger.current(adult, purpose.id).counts


@pytest.mark.parametrize("state", ["given", "refused", "withdrawn", "paused"])
def test_only_consent_purposes_take_consent(ledger: ConsentLedger, adult: Citizen, policy: Policy,
                                            state: str) -> None:
    purpose = non_consent_purpose(policy)
    assert rule_of(ledger.set_state, adult, purpose.id, state) == "legal-basis-not-consent"
    assert rule_of(ledger.revoke, adult, purpose.id) == "legal-basis-not-consent"
    status = ledger.current(adult, purpose.id)
    assert (status.state, status.takes_consent, status.counts) == (None, False, False)
    assert status.legal_basis == purpose.legal_basis


def test_special_category_needs_explicit_confirmation(ledger: ConsentLedger, adult: Citizen,
                                                      policy: Policy) -> None:
    purpose = special_purpose(policy)
    assert rule_of(ledger.set_state, adult, purpose.id, "given") == "explicit-confirmation-required"
    assert ledger.history(adult, purpose.id) == []
    record = ledger.set_state(adult, purpose.id, "given", explicit=True)
    assert record.consent_type == "explicit"
    assert ledger.current(adult, purpose.id).counts
    # a renewal needs the confirmation again; withdrawing never does
    assert rule_of(ledger.set_state, adult, purpose.id, "given") == "explicit-confirmation-required"
    assert ledger.set_state(adult, purpose.id, "withdrawn").state == "withdrawn"


def test_an_ordinary_consent_is_expressed(ledger: ConsentLedger, adult: Citizen, policy: Policy) -> None:
    assert ledger.set_state(adult, plain_purpose(policy).id, "given").consent_type == "expressed"


def test_a_minor_needs_a_guardians_record(session: Session, ledger: ConsentLedger, policy: Policy,
                                          secrets: Secrets, clock: FixedClock, adult: Citizen) -> None:
    purpose = plain_purpose(policy)
    minor = make_citizen(session, secrets, clock, born=born_years_ago(clock, policy.minimum_age(purpose) - 1))
    assert rule_of(ledger.set_state, minor, purpose.id, "given") == "guardian-required"
    link(session, adult, minor, clock)
    record = ledger.set_state(minor, purpose.id, "given", guardian=adult)
    assert (record.expressed_by, record.method, record.guardian_pseudonym) == ("guardian", "guardian",
                                                                               adult.pseudonym)
    assert record.pseudonym == minor.pseudonym
    assert ledger.current(minor, purpose.id).counts
    # withdrawal never needs the guardian
    withdrawn = ledger.set_state(minor, purpose.id, "withdrawn")
    assert (withdrawn.expressed_by, withdrawn.guardian_pseudonym) == ("self", None)


def test_from_the_minimum_age_a_citizen_decides_alone(session: Session, ledger: ConsentLedger, policy: Policy,
                                                      secrets: Secrets, clock: FixedClock, adult: Citizen) -> None:
    purpose = plain_purpose(policy)
    birthday_today = make_citizen(session, secrets, clock, born=born_years_ago(clock, policy.minimum_age(purpose)))
    assert ledger.set_state(birthday_today, purpose.id, "given").expressed_by == "self"
    assert rule_of(ledger.set_state, birthday_today, purpose.id, "given", guardian=adult) == "guardian-not-applicable"


def test_a_guardian_must_be_a_registered_adult(session: Session, ledger: ConsentLedger, policy: Policy,
                                               secrets: Secrets, clock: FixedClock) -> None:
    purpose = plain_purpose(policy)
    minor = make_citizen(session, secrets, clock, born=born_years_ago(clock, 10))
    teenager = make_citizen(session, secrets, clock, born=born_years_ago(clock, 17))
    ageless = make_citizen(session, secrets, clock, born=None)
    stranger = Citizen(id="00000000-0000-0000-0000-000000000000", pseudonym="0" * 64,
                       birth_date=date(1970, 1, 1), created_at=clock.now())
    assert rule_of(ledger.set_state, minor, purpose.id, "given", guardian=teenager) == "guardian-not-adult"
    assert rule_of(ledger.set_state, minor, purpose.id, "given", guardian=ageless) == "guardian-not-adult"
    assert rule_of(ledger.set_state, minor, purpose.id, "given", guardian=minor) == "guardian-not-adult"
    assert rule_of(ledger.set_state, minor, purpose.id, "given", guardian=stranger) == "guardian-not-registered"
    assert ledger.history(minor) == []


def test_only_the_adult_the_city_linked_to_the_minor_consents_for_them(
        session: Session, ledger: ConsentLedger, policy: Policy, secrets: Secrets, clock: FixedClock,
        adult: Citizen) -> None:
    purpose = plain_purpose(policy)
    minor = make_citizen(session, secrets, clock, born=born_years_ago(clock, 12))
    other_child = make_citizen(session, secrets, clock, born=born_years_ago(clock, 9))
    other_parent = make_citizen(session, secrets, clock)
    link(session, other_parent, other_child, clock)
    # An adult, registered, even a guardian of another child: not this child's guardian.
    assert rule_of(ledger.set_state, minor, purpose.id, "given", guardian=adult) == "guardian-not-linked"
    assert rule_of(ledger.set_state, minor, purpose.id, "given", guardian=other_parent) == "guardian-not-linked"
    assert ledger.history(minor) == []
    link(session, adult, minor, clock)
    assert ledger.set_state(minor, purpose.id, "given", guardian=adult).guardian_pseudonym == adult.pseudonym
    # The link binds one way: the child is no guardian of the adult, nor the other parent of this child.
    assert rule_of(ledger.set_state, other_child, purpose.id, "given", guardian=adult) == "guardian-not-linked"


def test_an_ended_link_gives_no_more_consent_and_withdrawing_still_works(
        session: Session, ledger: ConsentLedger, policy: Policy, secrets: Secrets, clock: FixedClock,
        adult: Citizen) -> None:
    purpose, other = plain_purpose(policy), other_plain_purpose(policy)
    minor = make_citizen(session, secrets, clock, born=born_years_ago(clock, 12))
    link(session, adult, minor, clock)
    ledger.set_state(minor, purpose.id, "given", guardian=adult)
    clock.advance(days=1)
    Guardianships(session).end(adult, minor, actor="operator", now=clock.now())
    assert rule_of(ledger.set_state, minor, other.id, "given", guardian=adult) == "guardian-not-linked"
    assert rule_of(ledger.set_state, minor, purpose.id, "withdrawn", guardian=adult) == "guardian-not-linked"
    assert ledger.set_state(minor, purpose.id, "withdrawn").expressed_by == "self"  # the minor's own, always


def test_an_unknown_age_is_refused_only_where_the_purpose_asks_more(session: Session, ledger: ConsentLedger,
                                                                    policy: Policy, secrets: Secrets,
                                                                    clock: FixedClock, adult: Citizen) -> None:
    ageless = make_citizen(session, secrets, clock, born=None)
    assert ledger.set_state(ageless, plain_purpose(policy).id, "given").expressed_by == "self"
    strict = special_purpose(policy)
    assert policy.minimum_age(strict) > policy.broker.default_minimum_age
    assert rule_of(ledger.set_state, ageless, strict.id, "given", explicit=True) == "age-unknown"
    # Nor can a guardian stand in: the city links guardians only to citizens known to be minors.
    assert rule_of(ledger.set_state, ageless, strict.id, "given", explicit=True,
                   guardian=adult) == "guardian-not-linked"


def test_the_purposes_own_minimum_age_applies(session: Session, ledger: ConsentLedger, policy: Policy,
                                              secrets: Secrets, clock: FixedClock, adult: Citizen) -> None:
    purpose = special_purpose(policy)
    seventeen = make_citizen(session, secrets, clock, born=born_years_ago(clock, policy.minimum_age(purpose) - 1))
    assert rule_of(ledger.set_state, seventeen, purpose.id, "given", explicit=True) == "guardian-required"
    link(session, adult, seventeen, clock)
    assert ledger.set_state(seventeen, purpose.id, "given", explicit=True, guardian=adult).state == "given"


def test_a_suspended_purpose_takes_no_new_consent_and_counts_none(session: Session, ledger: ConsentLedger,
                                                                  policy: Policy, secrets: Secrets,
                                                                  clock: FixedClock, adult: Citizen) -> None:
    purpose = plain_purpose(policy)
    ledger.set_state(adult, purpose.id, "given")
    for status in ("suspended", "retired"):
        paused_policy = with_purpose(policy, purpose.model_copy(update={"status": status}))
        suspended = ConsentLedger(session, paused_policy, secrets, clock)
        assert not suspended.current(adult, purpose.id).counts
        assert suspended.current(adult, purpose.id).reason == "purpose-not-active"
        assert session.exec(suspended.valid_consent_pseudonyms(purpose.id)).all() == []
        assert rule_of(suspended.set_state, adult, purpose.id, "given") == "purpose-not-active"
    assert suspended.set_state(adult, purpose.id, "withdrawn").state == "withdrawn"


def test_restriction_blocks_use_and_keeps_records(session: Session, ledger: ConsentLedger, policy: Policy,
                                                  secrets: Secrets, clock: FixedClock, adult: Citizen) -> None:
    purpose, other = plain_purpose(policy), special_purpose(policy)
    ledger.set_state(adult, purpose.id, "given")
    ledger.set_state(adult, other.id, "given", explicit=True)
    before = [r.id for r in ledger.history(adult)]
    CitizenService(session, secrets).restrict(adult, clock.now())

    status = ledger.current(adult.pseudonym, purpose.id)
    assert (status.state, status.counts, status.reason) == ("given", False, "citizen-restricted")
    assert adult.pseudonym not in session.exec(ledger.valid_consent_pseudonyms(purpose)).all()
    assert [r.id for r in ledger.history(adult)] == before
    # nothing new starts while restricted, but withdrawing always works
    assert rule_of(ledger.set_state, adult, purpose.id, "given") == "citizen-restricted"
    assert ledger.set_state(adult, other.id, "withdrawn").state == "withdrawn"

    CitizenService(session, secrets).lift_restriction(adult)
    assert ledger.current(adult, purpose.id).counts
    assert session.exec(ledger.valid_consent_pseudonyms(purpose)).all() == [adult.pseudonym]


def test_an_erased_citizen_counts_nowhere_and_changes_nothing(session: Session, ledger: ConsentLedger,
                                                              policy: Policy, adult: Citizen,
                                                              clock: FixedClock) -> None:
    purpose = plain_purpose(policy)
    ledger.set_state(adult, purpose.id, "given")
    adult.erased_at = clock.now()
    session.add(adult)
    session.flush()
    assert ledger.current(adult.pseudonym, purpose.id).reason == "citizen-erased"
    assert session.exec(ledger.valid_consent_pseudonyms(purpose)).all() == []
    with pytest.raises(CitizenErased):
        ledger.set_state(adult, purpose.id, "withdrawn")


def test_requests_are_checked_before_anything_is_written(ledger: ConsentLedger, adult: Citizen,
                                                         policy: Policy) -> None:
    purpose = plain_purpose(policy)
    with pytest.raises(NotFound):
        ledger.set_state(adult, "no-such-purpose", "given")
    with pytest.raises(InvalidRequest):
        ledger.set_state(adult, purpose.id, "given", method="carrier-pigeon")
    with pytest.raises(InvalidRequest):
        ledger.set_state(adult, purpose.id, "given", language="xx")
    assert ledger.history(adult) == []


def test_the_record_speaks_the_citizens_language(session: Session, ledger: ConsentLedger, policy: Policy,
                                                 secrets: Secrets, clock: FixedClock) -> None:
    english = make_citizen(session, secrets, clock, locale="en")
    purpose = plain_purpose(policy)
    assert ledger.set_state(english, purpose.id, "given").language == "en"
    assert ledger.set_state(english, purpose.id, "given", language="fr").language == "fr"
    assert ledger.receipt(ledger.history(english)[0])["purpose"]["title"] == purpose.title.en
