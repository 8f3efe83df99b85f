"""Writing to the access log.

:func:`record` is the one hook every action calls, inside the transaction of the action itself: if the action
rolls back, so does its entry (and its sequence number, which the next entry takes), and an action cannot
commit without its entry. Call it last, just before the transaction ends: from the call to the commit the
transaction holds the sequencer row, so every other append waits (that wait is what keeps ``seq`` gap-free
and in commit order on PostgreSQL; SQLite serialises writers anyway).

The entry is a JSON object: ``seq``, ``at`` (RFC 3339, UTC, microseconds; never earlier than the previous
entry's, so time in the log does not go backwards even when workers' clocks differ a little), ``actor``,
``action``, and those of ``purpose``, ``dataset``, ``decision``, ``reasons``, ``epsilon``, ``request_hash``,
``result_hash``, ``subject`` and ``details`` that are set. Its bytes are its RFC 8785 canonical JSON, and its
leaf hash ``SHA-256(0x00 || bytes)`` (RFC 9162 §2.1.1).

Entries are immutable and public to auditors, so they carry pseudonyms and technical fields only: a citizen
is ``citizen:<pseudonym>``, never an id, an email or a name (the EDPB advises keeping personal data out of
immutable structures), and nothing secret (no password, token, client secret or key).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import rfc8785
from sqlalchemy import Connection, bindparam, case, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from broker.audit.models import AuditEntry, AuditState
from broker.audit.rfc9162 import leaf_hash
from broker.timeutil import as_utc

SEQUENCER = "sequencer"
_ENTRIES = AuditEntry.__table__
_STATE = AuditState.__table__


@dataclass(frozen=True)
class AuditEvent:
    """One thing that happened. ``subject`` is a citizen's pseudonym, never an identifier.

    ``details`` must be JSON (no NaN or infinity) and free of personal data; what each action puts there is
    listed in :mod:`broker.audit.actions` (for ``query``, the fields the offline budget replay needs).
    """

    actor: str
    action: str
    purpose: str | None = None
    dataset: str | None = None
    decision: str | None = None
    reasons: list[Any] = field(default_factory=list)
    epsilon: float | None = None
    request_hash: str | None = None
    result_hash: str | None = None
    subject: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def canonical(entry: dict[str, Any]) -> bytes:
    """RFC 8785 (JCS) bytes of an entry: what the leaf hash covers.

    The standard library's encoder writes exactly what RFC 8785 writes for ASCII keys, strings, booleans,
    null, integers within I-JSON, and floats that print without an exponent (integral floats are written
    as integers, as RFC 8785 does); anything else (exponents, non-ASCII keys, odd strings) goes through the
    ``rfc8785`` package. The tests hold the two to the same output.
    """
    try:
        plain = _plain(entry)
    except _Exotic:
        return rfc8785.dumps(entry)
    try:
        return json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode()
    except (UnicodeEncodeError, ValueError):
        return rfc8785.dumps(entry)


class _Exotic(Exception):
    pass


_MAX_SAFE_INTEGER = 2**53 - 1


def _plain(value: Any) -> Any:
    """``value`` with integral floats as integers, or _Exotic where only RFC 8785's own encoder will do."""
    if isinstance(value, str) or value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER:
            return value
        raise _Exotic
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise _Exotic  # RFC 8785 refuses them; let it say so
        if value.is_integer():
            if abs(value) <= _MAX_SAFE_INTEGER:
                return int(value)
            raise _Exotic  # big integral floats print with an exponent or all their digits: RFC 8785 decides
        if "e" in repr(value):
            raise _Exotic
        return value
    if isinstance(value, dict):
        if not all(isinstance(key, str) and key.isascii() for key in value):
            raise _Exotic
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    raise _Exotic


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds and ``Z``: one instant always prints the same, and sorts as text."""
    return as_utc(moment).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def micros(moment: datetime) -> int:
    delta = as_utc(moment) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    return datetime.fromtimestamp(value // 1_000_000, UTC).replace(microsecond=value % 1_000_000)


_FIELDS = tuple(f.name for f in fields(AuditEvent))


def entry_of(seq: int, at: datetime, event: AuditEvent) -> dict[str, Any]:
    """The entry as logged: ``seq`` and ``at`` with every field of ``event`` that is set."""
    entry: dict[str, Any] = {"seq": seq, "at": timestamp(at)}
    for name in _FIELDS:
        value = getattr(event, name)
        if value is not None and value != [] and value != {}:
            entry[name] = value
    return entry


# Built once: only their parameters change from one append to the next (SQLAlchemy's compiled cache).
_TAKE = (update(_STATE).where(_STATE.c.name == SEQUENCER)
         .values(position=_STATE.c.position + 1,
                 moment_us=case((_STATE.c.moment_us > bindparam("at_us"), _STATE.c.moment_us),
                                else_=bindparam("at_us")))
         .returning(_STATE.c.position, _STATE.c.moment_us))
_INSERT = _ENTRIES.insert()


def record(session: Session | Connection, event: AuditEvent, at: datetime) -> int:
    """Append ``event`` in the caller's transaction; returns its sequence number (its index in the tree)."""
    if not 0 < len(event.action) <= 64 or not 0 < len(event.actor) <= 128:
        raise ValueError("an audit event needs an action (<= 64 characters) and an actor (<= 128)")
    connection = session if isinstance(session, Connection) else session.connection()
    seq, moment_us = _next(connection, micros(at))
    moment = from_micros(moment_us)
    body = canonical(entry_of(seq, moment, event))
    connection.execute(_INSERT, {
        "seq": seq, "at": moment, "actor": event.actor, "action": event.action, "purpose": event.purpose,
        "dataset": event.dataset, "decision": event.decision, "subject": event.subject,
        "leaf_hash": leaf_hash(body), "body": body.decode()})
    return seq


def _next(connection: Connection, at_us: int) -> tuple[int, int]:
    """Take the next sequence number and the entry's time, holding the sequencer row until the transaction ends."""
    row = connection.execute(_TAKE, {"at_us": at_us}).first()
    if row is None:  # the very first entry: create the row (a concurrent first append waits, then conflicts)
        insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
        connection.execute(insert(_STATE).values(name=SEQUENCER, position=0, moment_us=0)
                           .on_conflict_do_nothing(index_elements=["name"]))
        row = connection.execute(_TAKE, {"at_us": at_us}).one()
    position, moment_us = row
    return position - 1, moment_us


def entry_body(entry: AuditEntry) -> dict[str, Any]:
    return json.loads(entry.body)
