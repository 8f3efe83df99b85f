"""Fixtures and factories for the consent tests: citizens, purposes found by property, a ledger."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from broker.consent.ledger import ConsentLedger
from broker.db import session_scope
from broker.identity.citizens import CitizenService
from broker.identity.guardianship import Guardianships
from broker.identity.models import Citizen, Guardianship
from broker.keys import Secrets
from broker.policy import Policy, Purpose
from broker.timeutil import FixedClock

ADULT_BORN = date(1985, 6, 1)


def make_citizen(session: Session, secrets: Secrets, clock: FixedClock, *, born: date | None = ADULT_BORN,
                 locale: str = "fr") -> Citizen:
    return CitizenService(session, secrets).register(
        email=f"{uuid.uuid4().hex}@lyon.example", name="Habitant Test", birth_date=born, district="lyon-3",
        locale=locale, now=clock.now())


def link(session: Session, guardian: Citizen, minor: Citizen, clock: FixedClock) -> Guardianship:
    """The city records ``guardian``'s parental responsibility for ``minor``, as the CLI does."""
    return Guardianships(session).establish(guardian, minor, basis="registry", actor="operator", now=clock.now())


def born_years_ago(clock: FixedClock, years: int) -> date:
    today = clock.now().date()
    return today.replace(year=today.year - years)


def plain_purpose(policy: Policy) -> Purpose:
    """A consent purpose with no special category and the default minimum age."""
    return next(p for p in policy.purposes if p.takes_consent and not p.special_category and p.status == "active"
                and policy.minimum_age(p) == policy.broker.default_minimum_age)


def other_plain_purpose(policy: Policy) -> Purpose:
    first = plain_purpose(policy)
    return next(p for p in policy.purposes if p.takes_consent and not p.special_category and p.id != first.id)


def special_purpose(policy: Policy) -> Purpose:
    return next(p for p in policy.purposes if p.special_category)


def non_consent_purpose(policy: Policy) -> Purpose:
    return next(p for p in policy.purposes if not p.takes_consent)


def with_purpose(policy: Policy, purpose: Purpose) -> Policy:
    """``policy`` with ``purpose`` replacing the purpose of the same id."""
    return policy.model_copy(update={"purposes": [purpose if p.id == purpose.id else p for p in policy.purposes]})


def bumped(policy: Policy, purpose: Purpose, **changes: object) -> Policy:
    return with_purpose(policy, purpose.model_copy(update={"version": purpose.version + 1, **changes}))


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with session_scope(engine) as session:
        yield session


@pytest.fixture
def ledger(session: Session, policy: Policy, secrets: Secrets, clock: FixedClock) -> ConsentLedger:
    return ConsentLedger(session, policy, secrets, clock)


@pytest.fixture
def adult(session: Session, secrets: Secrets, clock: FixedClock) -> Citizen:
    return make_citizen(session, secrets, clock)
