"""``GET /v1/me/accesses``: every release that may have used a citizen's data, each with its proof.

Releases are not stored per citizen (DESIGN §4: O(1) writes per query, not O(cohort)), so the list is derived
from two things the citizen can check themselves: the audit log's allowed ``query`` entries, and their own
consent history. A release used their data when, at its time, they had a consent that counted for its
purpose: a ``given`` record, from its ``valid_from`` until the first of its ``valid_until`` and the next record
of that purpose (withdrawal, pause, revocation, expiry, renewal), for the version the entry names in
``details.purpose_version`` when it names one. For a purpose that does not rest on consent (a public task),
every release since the citizen registered is listed: such processing does not wait for a consent. An Art 18
restriction in force ends every interval at its start.

The list errs on the side of showing: a release in which the citizen did not count after all (their personal
ε cap was reached, or a restriction since lifted was in force then) still appears; a release that counted
them never misses. Each comes with its audit index and an RFC 9162 inclusion proof against the newest signed
checkpoint (none yet for an entry past it), so the citizen's software can check that it is in the log the
auditors see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlmodel import Session

from broker.audit import actions
from broker.audit.checkpoints import Checkpoint
from broker.audit.entries import ServedEntry
from broker.audit.log import timestamp
from broker.audit.models import AuditEntry
from broker.audit.service import AuditLog
from broker.audit.tree import StoredTree
from broker.consent.ledger import ConsentLedger
from broker.consent.models import ConsentRecord
from broker.consent.states import ConsentState
from broker.db import session_scope
from broker.identity.citizens import CitizenService
from broker.keys import Secrets
from broker.policy.schema import Policy
from broker.timeutil import Clock

_ENTRIES = AuditEntry.__table__
SCAN = 1_000  # query entries read per round while filling a page
FOREVER = "9999-12-31T23:59:59.999999Z"


@dataclass(frozen=True)
class Interval:
    start: str  # timestamps in the log's own format, compared as text
    end: str
    version: int | None  # the purpose version consented to; None for a purpose not based on consent


@dataclass(frozen=True)
class Access:
    served: ServedEntry
    entry: dict[str, Any]
    legal_basis: str
    inclusion_path: list[bytes] | None  # None: not yet covered by the checkpoint


@dataclass(frozen=True)
class Accesses:
    checkpoint: Checkpoint
    accesses: list[Access]
    next_cursor: int | None


def consent_intervals(records: list[ConsentRecord]) -> dict[str, list[Interval]]:
    """Per purpose, the intervals in which a given consent counted (``records`` oldest first)."""
    by_purpose: dict[str, list[ConsentRecord]] = {}
    for record in records:
        by_purpose.setdefault(record.purpose_id, []).append(record)
    out: dict[str, list[Interval]] = {}
    for purpose_id, chain in by_purpose.items():
        for record, following in zip(chain, [*chain[1:], None], strict=True):
            if record.state != ConsentState.given.value:
                continue
            ends = [timestamp(record.valid_until)] if record.valid_until else [FOREVER]
            if following is not None:
                ends.append(timestamp(following.valid_from))
            out.setdefault(purpose_id, []).append(
                Interval(timestamp(record.valid_from), min(ends), record.purpose_version))
    return out


def _counted(entry: dict[str, Any], intervals: list[Interval]) -> bool:
    at = entry.get("at", "")
    version = (entry.get("details") or {}).get("purpose_version")
    return any(i.start <= at < i.end and (i.version is None or version is None or version == i.version)
               for i in intervals)


class CitizenAccesses:
    def __init__(self, engine: Engine, policy: Policy, secrets: Secrets, clock: Clock,
                 reader: Engine | None = None) -> None:
        self.engine = engine
        self.reader = reader or engine
        self.policy = policy
        self.secrets = secrets
        self.clock = clock

    def _intervals(self, session: Session, citizen_id: str) -> dict[str, list[Interval]]:
        citizen = CitizenService(session, self.secrets).get(citizen_id)  # CitizenErased once erased
        intervals = consent_intervals(ConsentLedger(session, self.policy, self.secrets, self.clock).history(citizen))
        for purpose in self.policy.purposes:
            if not purpose.takes_consent:
                intervals[purpose.id] = [Interval(timestamp(citizen.created_at), FOREVER, None)]
        if citizen.restricted_at is not None:
            cut = timestamp(citizen.restricted_at)
            intervals = {p: [Interval(i.start, min(i.end, cut), i.version) for i in spans if i.start < cut]
                         for p, spans in intervals.items()}
        return {p: spans for p, spans in intervals.items() if spans}

    def list(self, citizen_id: str, cursor: int | None = None, limit: int = 100) -> Accesses:
        with session_scope(self.reader) as session:
            intervals = self._intervals(session, citizen_id)
        checkpoint = AuditLog(self.engine, self.secrets, self.clock, self.reader).checkpoint()
        found: list[tuple[ServedEntry, dict[str, Any]]] = []
        after, more = cursor, False
        with session_scope(self.reader) as session:
            connection = session.connection()
            while intervals and not more:
                rows = connection.execute(
                    select(_ENTRIES.c.seq, _ENTRIES.c.leaf_hash, _ENTRIES.c.body)
                    .where(_ENTRIES.c.action == actions.QUERY, _ENTRIES.c.decision == "allow",
                           _ENTRIES.c.purpose.in_(list(intervals)), _ENTRIES.c.seq > (-1 if after is None else after))
                    .order_by(_ENTRIES.c.seq).limit(SCAN)).all()
                for seq, digest, body in rows:
                    served = ServedEntry(seq, bytes(digest), body)
                    entry = served.entry()
                    if _counted(entry, intervals[entry["purpose"]]):
                        if len(found) == limit:
                            more = True
                            break
                        found.append((served, entry))
                if len(rows) < SCAN:
                    break
                after = rows[-1][0]
            covered = [served.index for served, _ in found if served.index < checkpoint.tree_size]
            paths = dict(zip(covered, StoredTree(connection).inclusion_paths(covered, checkpoint.tree_size),
                             strict=True)) if covered else {}
        purposes = {p.id: p for p in self.policy.purposes}
        accesses = [Access(served, entry, purposes[entry["purpose"]].legal_basis if entry["purpose"] in purposes
                           else "unknown", paths.get(served.index)) for served, entry in found]
        return Accesses(checkpoint, accesses, found[-1][0].index if more and found else None)
