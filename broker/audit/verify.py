"""Checking the log: every leaf, every root, every checkpoint, the budgets; the first inconsistency, located.

:class:`LogVerifier` takes entries in index order from any source (the database, or an export an auditor
holds, see :mod:`broker.audit.sources`) and checks, for each:

* the sequence has no gap (``index`` is the count so far) and the entry says the same index (``seq``), so a
  removed, inserted or moved entry is named where it happened;
* its bytes are canonical JSON (RFC 8785): one meaning, one hash (a duplicated key, for one, is refused);
* its leaf hash, recomputed, is the one stored or served;
* its time does not go backwards;
* for an allowed query, the budget replay (:mod:`broker.audit.replay`);

then folds the leaf into the tree and, whenever the tree reaches the size of a checkpoint, compares the root
with the signed one. Since every root is recomputed from the one sequence of entries, each checkpoint is
proven to extend the one before it. Where the stored subtree hashes are given (the database), each is
compared as it completes: they are what proofs are served from.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import rfc8785

from broker.audit import rfc9162
from broker.audit.checkpoints import Checkpoint
from broker.audit.replay import BudgetReplay

_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
_MAX_SAFE_INTEGER = 2**53 - 1  # RFC 8785 §3.2.2.3: I-JSON numbers


@dataclass(frozen=True)
class Finding:
    what: str
    index: int | None = None

    def __str__(self) -> str:
        return f"index {self.index}: {self.what}" if self.index is not None else self.what


class Inconsistent(Exception):
    def __init__(self, finding: Finding) -> None:
        super().__init__(str(finding))
        self.finding = finding


@dataclass
class Report:
    checked: list[str] = field(default_factory=list)
    finding: Finding | None = None

    @property
    def ok(self) -> bool:
        return self.finding is None


# -- canonical JSON, checked fast ---------------------------------------------------------------------------

class _NotCanonical(ValueError):
    pass


def _float(literal: str) -> float:
    value = float(literal)
    shortest = repr(value)
    # repr is ES6's shortest round-trip form wherever it uses no exponent and the value is not integral
    # (1e-4 <= |value| < 1e16); anything else goes through RFC 8785's own formatter.
    canonical = shortest if "e" not in shortest and not value.is_integer() else rfc8785.dumps(value).decode()
    if literal != canonical:
        raise _NotCanonical(f"number {literal} is not written as RFC 8785 writes it ({canonical})")
    return value


def _int(literal: str) -> int:
    value = int(literal)
    if abs(value) > _MAX_SAFE_INTEGER or str(value) != literal:
        raise _NotCanonical(f"integer {literal} is outside I-JSON or not canonical")
    return value


def parse_canonical(body: bytes) -> dict[str, Any]:
    """The entry ``body`` encodes, provided ``body`` is exactly its RFC 8785 form; else ValueError.

    Numbers are checked as they are parsed; the rest by re-serialising with sorted keys and no whitespace,
    which is RFC 8785 for every other JSON value (keys are ASCII here, so code-point order is UTF-16 order).
    """
    value = json.loads(body, parse_float=_float, parse_int=_int)
    if not isinstance(value, dict):
        raise _NotCanonical("an entry is a JSON object")
    fast = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if fast != body and rfc8785.dumps(value) != body:
        raise _NotCanonical("the bytes are not the canonical JSON (RFC 8785) of the entry")
    return value


# -- the verifier ------------------------------------------------------------------------------------------

def check_checkpoint_order(group: Sequence[Checkpoint], label: str = "checkpoint") -> None:
    """Within one series of checkpoints (the broker's, or those one auditor kept): time never goes back."""
    ordered = sorted(group, key=lambda c: c.tree_size)
    for before, after in zip(ordered, ordered[1:], strict=False):
        if after.timestamp < before.timestamp:
            raise Inconsistent(Finding(f"{label} of size {after.tree_size} is dated {after.timestamp}, before the "
                                       f"{label} of size {before.tree_size} ({before.timestamp})"))


class LogVerifier:
    def __init__(self, kept: Sequence[Checkpoint], *, stored_nodes: Iterator[tuple[int, bytes]] | None = None,
                 nodes_to_compare: int = 0) -> None:
        self.tree = rfc9162.CompactRange()
        self.replay = BudgetReplay()
        self.last_at = ""
        self.roots_checked = 0
        self.nodes_compared = 0
        self._pending = deque(sorted(kept, key=lambda c: c.tree_size))
        self._matched_size = 0
        self._stored = stored_nodes
        self._nodes_left = nodes_to_compare
        self._node_rank = 0
        self._check_roots()

    @property
    def count(self) -> int:
        return self.tree.size

    def add(self, index: int, body: bytes, claimed_leaf: bytes | None,
            columns: dict[str, Any] | None = None) -> dict[str, Any]:
        """Check one entry and fold it in; returns the parsed entry, or raises Inconsistent."""
        expected = self.tree.size
        if index != expected:
            what = (f"missing: the sequence jumps from {expected - 1} to {index}" if index > expected
                    else f"out of order: index {index} comes after {expected - 1}")
            raise Inconsistent(Finding(what, expected))
        leaf = rfc9162.leaf_hash(body)
        if claimed_leaf is not None and leaf != claimed_leaf:
            raise Inconsistent(Finding(f"the entry hashes to {leaf.hex()[:16]}… but its leaf hash says "
                                       f"{claimed_leaf.hex()[:16]}…: the entry was changed", index))
        try:
            entry = parse_canonical(body)
        except ValueError as exc:
            raise Inconsistent(Finding(f"not a canonical JSON entry: {exc}", index)) from None
        if entry.get("seq") != index:
            raise Inconsistent(Finding(f"the entry says it is entry {entry.get('seq')!r}: an entry was inserted, "
                                       "removed or moved here", index))
        at = entry.get("at")
        if not isinstance(at, str) or not _TIMESTAMP.match(at):
            raise Inconsistent(Finding(f"time {at!r} is not RFC 3339 UTC with microseconds", index))
        if at < self.last_at:
            raise Inconsistent(Finding(f"time goes backwards: {at} after {self.last_at}", index))
        self.last_at = at
        if columns is not None:
            for name, value in columns.items():
                if entry.get(name) != value:
                    raise Inconsistent(Finding(f"column {name} holds {value!r} but the entry says "
                                               f"{entry.get(name)!r}", index))
        problem = self.replay.add(entry)
        if problem is not None:
            raise Inconsistent(Finding(problem, index))
        self.tree.append(leaf, self._compare_node if self._nodes_left else None)
        self._check_roots()
        return entry

    def _compare_node(self, level: int, index: int, digest: bytes) -> None:
        if self._nodes_left <= 0 or self._stored is None:
            return
        self._nodes_left -= 1
        first, last = index << level, ((index + 1) << level) - 1
        stored = next(self._stored, None)
        if stored is None or stored[0] != self._node_rank or stored[1] != digest:
            raise Inconsistent(Finding(f"entries {first}..{last}: the stored subtree hash differs from the one "
                                       "recomputed from the entries (entries or stored tree changed)", first))
        self._node_rank += 1
        self.nodes_compared += 1

    def _check_roots(self) -> None:
        while self._pending and self._pending[0].tree_size == self.tree.size:
            checkpoint = self._pending.popleft()
            if self.tree.root() != checkpoint.root:
                raise Inconsistent(Finding(
                    f"entries {self._matched_size}..{checkpoint.tree_size - 1} do not lead to the root signed in "
                    f"the checkpoint of size {checkpoint.tree_size} ({checkpoint.timestamp}): an entry among them "
                    "was changed, added, removed or moved", self._matched_size))
            self._matched_size = checkpoint.tree_size
            self.roots_checked += 1

    def finish(self, *, claimed_count: int | None = None) -> None:
        if self._pending:
            checkpoint = self._pending[0]
            raise Inconsistent(Finding(f"missing: the checkpoint of size {checkpoint.tree_size} "
                                       f"({checkpoint.timestamp}) covers {checkpoint.tree_size} entries, the log "
                                       f"has {self.tree.size}", self.tree.size))
        if claimed_count is not None and claimed_count != self.tree.size:
            raise Inconsistent(Finding(f"missing: {claimed_count} entries were appended, the log holds "
                                       f"{self.tree.size}", min(claimed_count, self.tree.size)))
        if self._nodes_left > 0:
            raise Inconsistent(Finding(f"the stored tree lacks {self._nodes_left} subtree hash(es)"))
