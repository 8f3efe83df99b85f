"""What a running broker holds: settings, the database engine, the loaded policy, secrets and the clock.

Built once by ``create_app`` or a CLI command and passed down; nothing here is a module-level global.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine

from broker.db import make_engine, session_scope
from broker.keys import KeyRing, Secrets
from broker.policy import Policy, load_policy
from broker.settings import Settings
from broker.timeutil import Clock, SystemClock


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    policy: Policy
    secrets: Secrets
    clock: Clock = field(default_factory=SystemClock)

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock | None = None) -> Runtime:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return cls(
            settings=settings,
            engine=make_engine(settings.resolved_database_url(), busy_timeout_ms=settings.sqlite_busy_timeout_ms),
            policy=load_policy(settings.policy_dir),
            secrets=Secrets.from_settings(settings),
            clock=clock or SystemClock(),
        )

    def keyring(self) -> KeyRing:
        """The signing keys in force, read afresh so that a rotation by another process is seen."""
        with session_scope(self.engine) as session:
            return KeyRing.load(session, self.secrets)
