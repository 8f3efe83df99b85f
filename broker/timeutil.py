"""One clock for the whole broker, so tests can hold time still (a seam, not a mock)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that moves only when told to; used by tests of expiry and timeouts."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        from datetime import timedelta

        self.at = self.at + timedelta(**delta)


def as_utc(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; everything the broker stores is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)
