"""Reading the log for auditors: filters, cursor pages, and the JSON Lines and CSV exports.

Each entry is served as ``{index, leaf_hash, entry}`` (DESIGN §6), written out as the canonical JSON of that
object: ``entry`` is the stored bytes verbatim, so an auditor hashes exactly what the tree committed to, and
the export is itself RFC 8785 (keys ``entry`` < ``index`` < ``leaf_hash``). A cursor is the index of the last
entry of the previous page: the log only grows, so a cursor never skips or repeats an entry.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Select, select

from broker.audit.models import AuditEntry
from broker.db import session_scope
from broker.timeutil import as_utc

_ENTRIES = AuditEntry.__table__
EXPORT_CHUNK = 2_000  # entries per read transaction: a long export never holds SQLite's lock for long
CSV_COLUMNS = ("index", "leaf_hash", "at", "actor", "action", "purpose", "dataset", "decision", "epsilon",
               "subject", "entry")


@dataclass(frozen=True)
class EntryFilter:
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    actor: str | None = None
    action: str | None = None
    purpose: str | None = None
    dataset: str | None = None
    decision: str | None = None
    subject: str | None = None

    def apply(self, statement: Select[Any]) -> Select[Any]:
        c = _ENTRIES.c
        if self.since is not None:
            statement = statement.where(c.at >= as_utc(self.since))
        if self.until is not None:
            statement = statement.where(c.at < as_utc(self.until))
        for column, value in ((c.actor, self.actor), (c.action, self.action), (c.purpose, self.purpose),
                              (c.dataset, self.dataset), (c.decision, self.decision), (c.subject, self.subject)):
            if value is not None:
                statement = statement.where(column == value)
        return statement


@dataclass(frozen=True)
class ServedEntry:
    index: int
    leaf_hash: bytes
    body: str  # canonical JSON, as stored and hashed

    def line(self) -> str:
        """``{"entry":…,"index":…,"leaf_hash":…}``, the RFC 8785 form of the served entry, without a newline."""
        return f'{{"entry":{self.body},"index":{self.index},"leaf_hash":"{self.leaf_hash.hex()}"}}'

    def entry(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


def page(connection: Connection, where: EntryFilter, after: int | None, limit: int) -> list[ServedEntry]:
    statement = select(_ENTRIES.c.seq, _ENTRIES.c.leaf_hash, _ENTRIES.c.body)
    if after is not None:
        statement = statement.where(_ENTRIES.c.seq > after)
    rows = connection.execute(where.apply(statement).order_by(_ENTRIES.c.seq).limit(limit))
    return [ServedEntry(seq, bytes(digest), body) for seq, digest, body in rows]


def stream(engine: Engine, where: EntryFilter, *, chunk: int = EXPORT_CHUNK) -> Iterator[ServedEntry]:
    """Every matching entry in index order, read ``chunk`` at a time, each chunk in its own transaction."""
    after: int | None = None
    while True:
        with session_scope(engine) as session:
            batch = page(session.connection(), where, after, chunk)
        yield from batch
        if len(batch) < chunk:
            return
        after = batch[-1].index


def jsonl(entries: Iterator[ServedEntry]) -> Iterator[str]:
    for served in entries:
        yield served.line() + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value)
    # A spreadsheet would run a cell starting with one of these as a formula (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_rows(entries: Iterator[ServedEntry]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_COLUMNS)
    yield flush()
    for served in entries:
        entry = served.entry()
        # The entry column is the canonical JSON verbatim (it starts with "{"): the row stays verifiable.
        writer.writerow([served.index, served.leaf_hash.hex(), *(_cell(entry.get(name)) for name in CSV_COLUMNS[2:-1]),
                         served.body])
        yield flush()
