"""Fixtures for the exchange tests: a small world on each database (see ``world.py``)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from broker.keys import Secrets
from broker.policy import Policy
from broker.timeutil import FixedClock
from tests.exchange.world import World


@pytest.fixture
def world(engine: Engine, policy: Policy, secrets: Secrets, clock: FixedClock) -> World:
    return World(engine, policy, secrets, clock)
