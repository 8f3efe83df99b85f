"""Fixtures for the privacy tests: a small city on each database (see ``city.py``)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from broker.keys import Secrets
from broker.policy import Policy
from broker.timeutil import FixedClock
from tests.privacy.city import City


@pytest.fixture
def city(engine: Engine, policy: Policy, secrets: Secrets, clock: FixedClock) -> City:
    return City(engine, policy, secrets, clock)
