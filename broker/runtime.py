"""What a running broker holds: settings, the database engine, the loaded policy, secrets and the clock.

Built once by ``create_app`` or a CLI command and passed down; nothing here is a module-level global.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlmodel import Session

from broker.db import make_engine, make_reader
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
    reader: Engine | None = None  # reads that need not take SQLite's write lock; see broker.db.make_reader

    def __post_init__(self) -> None:
        if self.reader is None:
            self.reader = make_reader(self.engine, busy_timeout_ms=self.settings.sqlite_busy_timeout_ms)

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
        with Session(self.reader, expire_on_commit=False) as session:
            return KeyRing.load(session, self.secrets)

    def dispose(self) -> None:
        if self.reader is not None and self.reader is not self.engine:
            self.reader.dispose()
        self.engine.dispose()
