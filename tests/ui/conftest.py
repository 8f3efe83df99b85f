"""People with accounts for the portal's page tests."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from broker.identity.accounts import Role
from broker.keys import Secrets
from broker.timeutil import FixedClock
from tests.support.people import Person, make_citizen, make_staff


@pytest.fixture
def citizen(engine: Engine, secrets: Secrets, clock: FixedClock) -> Person:
    return make_citizen(engine, secrets, clock)


@pytest.fixture
def auditor(engine: Engine, secrets: Secrets, clock: FixedClock) -> Person:
    return make_staff(engine, secrets, clock, Role.auditor)
