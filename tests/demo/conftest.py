"""Fixtures for the demo tests: a small demo city seeded on each database."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine

from broker.demo import DemoCredentials, seed_demo
from broker.keys import Secrets
from broker.policy import Policy
from broker.runtime import Runtime
from broker.settings import Settings
from broker.timeutil import FixedClock

CITIZENS = 200
CHUNK = 64  # several chunks even for a small city


@dataclass
class Seeded:
    runtime: Runtime
    credentials: DemoCredentials

    @property
    def engine(self) -> Engine:
        return self.runtime.engine


def make_runtime(settings: Settings, engine: Engine, policy: Policy, secrets: Secrets, clock: FixedClock) -> Runtime:
    return Runtime(settings=settings, engine=engine, policy=policy, secrets=secrets, clock=clock)


@pytest.fixture
def runtime(settings: Settings, engine: Engine, policy: Policy, secrets: Secrets, clock: FixedClock) -> Runtime:
    return make_runtime(settings, engine, policy, secrets, clock)


@pytest.fixture
def seeded(runtime: Runtime) -> Seeded:
    credentials = seed_demo(runtime, citizens=CITIZENS, seed=7, chunk_size=CHUNK)
    return Seeded(runtime=runtime, credentials=credentials)


def credentials_path(settings: Settings) -> Path:
    return settings.data_dir / "demo-credentials.json"
