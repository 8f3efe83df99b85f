"""The access log as auditors and citizens read it: checkpoints, proofs, entries, the keys that sign.

Proofs are served for any size the integrator has folded; a request past it first runs the integrator (it is
cheap when there is little to fold), so a proof for an entry written a moment ago does not wait for the
background task.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlmodel import col, select

from broker.audit import checkpoints, entries
from broker.audit.checkpoints import Checkpoint
from broker.audit.entries import EntryFilter, ServedEntry
from broker.audit.integrator import integrate_if_behind, positions
from broker.audit.tree import StoredTree
from broker.db import session_scope
from broker.errors import InvalidRequest, NotFound
from broker.keymodels import SigningKey
from broker.keys import Secrets
from broker.timeutil import Clock

MAX_PAGE = 1_000


@dataclass(frozen=True)
class InclusionProof:
    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    inclusion_path: list[bytes]
    checkpoint: Checkpoint | None  # the checkpoint of exactly this size, if one was signed


@dataclass(frozen=True)
class ConsistencyProof:
    tree_size_1: int
    tree_size_2: int
    consistency_path: list[bytes]
    checkpoints: tuple[Checkpoint | None, Checkpoint | None]


@dataclass(frozen=True)
class Page:
    entries: list[ServedEntry]
    next_cursor: int | None


class AuditLog:
    """``engine`` writes (the integrator); ``reader`` (broker.db.make_reader) serves every read, so that on
    SQLite reading the log never queues behind the write lock."""

    def __init__(self, engine: Engine, secrets: Secrets, clock: Clock, reader: Engine | None = None) -> None:
        self.engine = engine
        self.reader = reader or engine
        self.secrets = secrets
        self.clock = clock

    def checkpoint(self) -> Checkpoint:
        """The newest signed checkpoint, after folding whatever has been appended since."""
        integrate_if_behind(self.engine, self.secrets, self.clock, self.reader)
        with session_scope(self.reader) as session:
            newest = checkpoints.latest(session.connection())
        if newest is None:  # only if the integrator is failing; its log says why
            raise NotFound("no checkpoint has been signed yet")
        return newest

    def _integrated(self, size: int) -> int:
        with session_scope(self.reader) as session:
            integrated = positions(session.connection()).integrated
        if size > integrated:
            integrate_if_behind(self.engine, self.secrets, self.clock, self.reader)
            with session_scope(self.reader) as session:
                integrated = positions(session.connection()).integrated
        return integrated

    def inclusion(self, index: int, size: int | None = None) -> InclusionProof:
        size = self.checkpoint().tree_size if size is None else size
        if not 0 <= index < size:
            raise InvalidRequest(f"entry {index} is not in a tree of size {size}")
        if size > self._integrated(size):
            raise NotFound(f"the tree has not reached size {size} yet")
        with session_scope(self.reader) as session:
            connection = session.connection()
            tree = StoredTree(connection)
            return InclusionProof(leaf_index=index, tree_size=size, leaf_hash=tree.leaf_hash(index),
                                  inclusion_path=tree.inclusion_path(index, size),
                                  checkpoint=checkpoints.at_size(connection, size))

    def consistency(self, first: int, second: int) -> ConsistencyProof:
        if not 0 <= first <= second:
            raise InvalidRequest("a consistency proof goes from a smaller (or equal) size to a larger one")
        if second > self._integrated(second):
            raise NotFound(f"the tree has not reached size {second} yet")
        with session_scope(self.reader) as session:
            connection = session.connection()
            path = StoredTree(connection).consistency_path(first, second) if 0 < first < second else []
            return ConsistencyProof(tree_size_1=first, tree_size_2=second, consistency_path=path,
                                    checkpoints=(checkpoints.at_size(connection, first),
                                                 checkpoints.at_size(connection, second)))

    def page(self, where: EntryFilter, cursor: int | None, limit: int) -> Page:
        limit = max(1, min(limit, MAX_PAGE))
        with session_scope(self.reader) as session:
            found = entries.page(session.connection(), where, cursor, limit + 1)
        more = len(found) > limit
        found = found[:limit]
        return Page(entries=found, next_cursor=found[-1].index if more else None)

    def export(self, where: EntryFilter) -> Iterator[ServedEntry]:
        return entries.stream(self.reader, where)

    def keys(self) -> dict[str, Any]:
        """Every signing key the broker ever had, retired ones included (public halves only): checkpoints
        outlive the keys that signed them, and an auditor verifying years of them offline needs every one."""
        with session_scope(self.reader) as session:
            rows = session.exec(select(SigningKey).order_by(col(SigningKey.created_at))).all()
            return {"keys": [json.loads(row.public_jwk) for row in rows]}
