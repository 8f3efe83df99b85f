"""Vectorised time arithmetic for the demo seeder: instants are int64 microseconds since the Unix epoch, UTC.

A million citizens and ten million records are too many for one ``datetime`` object each, so the seeder
does its calendar arithmetic (ages, ``add_months``) and its text formatting on numpy arrays. Each function
mirrors a scalar one the broker already uses (``identity.citizens.age_on``, ``consent.ledger.add_months``,
the storage format of the database driver, the receipts' ``_timestamp``); the tests hold them equal.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np

US_PER_SECOND = 1_000_000
US_PER_DAY = 86_400 * US_PER_SECOND
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _table(strings: list[str]) -> np.ndarray:
    """Equal-length ASCII strings as a (len, width) uint8 matrix, for row lookups."""
    raw = "".join(strings).encode("ascii")
    return np.frombuffer(raw, dtype=np.uint8).reshape(len(strings), -1)


_CLOCK = _table([f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)])
_THREE_DIGITS = _table([f"{i:03d}" for i in range(1000)])


def to_us(moment: datetime) -> int:
    return (moment.astimezone(UTC) - EPOCH) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(us))


def day_us(day: date) -> int:
    """Midnight UTC of ``day``."""
    return to_us(datetime(day.year, day.month, day.day, tzinfo=UTC))


def format_instants(us: np.ndarray, *, sep: str = " ", suffix: str = "") -> list[str]:
    """``YYYY-MM-DD<sep>HH:MM:SS.ffffff<suffix>`` for each instant, built from lookup tables.

    ``numpy.datetime_as_string`` and a ``str`` dtype conversion each cost more per value than writing the
    row itself; composing the text from per-day and per-second tables and decoding ASCII costs ~0.1 µs.
    """
    us = np.asarray(us, dtype=np.int64)
    if us.size == 0:
        return []
    day, rem = np.divmod(us, US_PER_DAY)
    seconds, micro = np.divmod(rem, US_PER_SECOND)
    first = int(day.min())
    days = np.arange(first, int(day.max()) + 1).astype("datetime64[D]")
    day_table = _table([f"{d}{sep}" for d in days.tolist()])
    width = 26 + len(suffix)
    out = np.empty((us.size, width), dtype=np.uint8)
    out[:, 0:11] = day_table[day - first]
    out[:, 11:19] = _CLOCK[seconds]
    out[:, 19] = ord(".")
    high, low = np.divmod(micro, 1000)
    out[:, 20:23] = _THREE_DIGITS[high]
    out[:, 23:26] = _THREE_DIGITS[low]
    if suffix:
        out[:, 26:] = np.frombuffer(suffix.encode("ascii"), dtype=np.uint8)
    return list(map(bytes.decode, out.view(f"S{width}").ravel().tolist()))


def format_days(days: np.ndarray) -> list[str]:
    """``YYYY-MM-DD`` for each datetime64[D] value."""
    days = np.asarray(days, dtype="datetime64[D]")
    if days.size == 0:
        return []
    ordinal = days.astype(np.int64)
    first = int(ordinal.min())
    table = np.array([str(d) for d in np.arange(first, int(ordinal.max()) + 1).astype("datetime64[D]").tolist()],
                     dtype=object)
    return table[ordinal - first].tolist()


def _civil(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(year, month, day) of datetime64[D] values."""
    years = days.astype("datetime64[Y]")
    months = days.astype("datetime64[M]")
    year = years.astype(np.int64) + 1970
    month = (months - years.astype("datetime64[M]")).astype(np.int64) + 1
    day = (days - months.astype("datetime64[D]")).astype(np.int64) + 1
    return year, month, day


def ages_on(birth: np.ndarray, on: np.ndarray | date) -> np.ndarray:
    """Completed years between each birth date and ``on``; the vector form of ``age_on``."""
    birth = np.asarray(birth, dtype="datetime64[D]")
    at = np.asarray(np.datetime64(on, "D") if isinstance(on, date) else on, dtype="datetime64[D]")
    by, bm, bd = _civil(birth)
    ay, am, ad = _civil(at)
    before_birthday = (am < bm) | ((am == bm) & (ad < bd))
    return ay - by - before_birthday.astype(np.int64)


def instants_to_days(us: np.ndarray) -> np.ndarray:
    return (np.asarray(us, dtype=np.int64) // US_PER_DAY).astype("datetime64[D]")


def add_months(us: np.ndarray, months: int) -> np.ndarray:
    """Calendar months later, same day or the month's last day, same time of day (ledger's ``add_months``)."""
    us = np.asarray(us, dtype=np.int64)
    day_index, time_of_day = np.divmod(us, US_PER_DAY)
    days = day_index.astype("datetime64[D]")
    month = days.astype("datetime64[M]")
    day_in_month = (days - month.astype("datetime64[D]")).astype(np.int64)
    target = month + np.timedelta64(months, "M")
    target_start = target.astype("datetime64[D]")
    length = ((target + np.timedelta64(1, "M")).astype("datetime64[D]") - target_start).astype(np.int64)
    new_days = target_start.astype(np.int64) + np.minimum(day_in_month, length - 1)
    return new_days * US_PER_DAY + time_of_day
