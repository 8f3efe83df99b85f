"""Checking the log: every leaf, every root, every checkpoint, the budgets; the first inconsistency, located.

Entries come in runs of consecutive indexes from any source (the database, or an export an auditor holds,
see :mod:`broker.audit.sources`). :func:`check_entries` checks each entry on its own (runs in parallel
processes):

* the sequence has no gap (``index`` is the count so far) and the entry says the same index (``seq``), so a
  removed, inserted or moved entry is named where it happened;
* its bytes are canonical JSON (RFC 8785): one meaning, one hash (a duplicated key, for one, is refused);
* its leaf hash, recomputed, is the one stored or served;
* its time does not go backwards;
* for an allowed query, what it charged (:mod:`broker.audit.replay`);

and :class:`LogVerifier` folds the runs in order: the budget replay, time across runs, the leaves into the
tree and, whenever the tree reaches the size of a checkpoint, its root against the signed one. Since every
root is recomputed from the one sequence of entries, each checkpoint is proven to extend the one before it.
Where the stored subtree hashes are given (the database), each is compared as it completes: they are what
proofs are served from. Whatever goes wrong, the finding reported is the one at the lowest index.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

import orjson
import rfc8785

from broker.audit import actions, rfc9162
from broker.audit.checkpoints import Checkpoint
from broker.audit.replay import BudgetReplay, Charge, charge_of
from broker.audit.tree import node_key

_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
COLUMNS = ("at", "actor", "action", "purpose", "dataset", "decision", "subject")


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

_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER  # integers beyond ±(2**53 - 1) raise, as in RFC 8785


def _plain_floats(value: dict[str, Any] | list[Any]) -> bool:
    """Whether every float in ``value`` prints the same in orjson and RFC 8785: non-integral (orjson writes
    ``4.0``, RFC 8785 ``4``) and in [1e-5, 1e15), where both write plain decimals (outside it orjson turns to
    exponents earlier than RFC 8785 does: ``1e+16`` for ``10000000000000000``). A walk over the parsed value
    costs less than scanning the bytes for such numbers."""
    for item in value.values() if type(value) is dict else value:
        kind = type(item)
        if kind is float:
            if item.is_integer() or not 1e-5 <= abs(item) < 1e15:
                return False
        elif (kind is dict or kind is list) and not _plain_floats(item):
            return False
    return True


def fast_canonical(body: str, data: bytes) -> dict[str, Any] | None:
    """The entry, when orjson proves ``data`` (``body`` encoded) canonical; None when it cannot tell.

    ``data`` is canonical when it is exactly what orjson writes back for what it reads (sorted keys, compact)
    and orjson's output is RFC 8785 there: for an ASCII document (keys then sort by code point, which is
    UTF-16 order; strings are escaped alike: ``"``, ``\\`` and control characters, ``\\u00XX`` in lowercase
    hex, nothing else), with integers within I-JSON (orjson refuses larger ones here) and plain floats (both
    print the same shortest round-trip digits). Everything else (non-ASCII text, other floats, input orjson
    refuses) is left to :func:`parse_canonical`'s slow path, which decides with RFC 8785's own encoder. The
    tests hold this to the ``rfc8785`` package over generated documents.
    """
    if not body.isascii():
        return None
    try:
        value = orjson.loads(data)
        if type(value) is not dict or orjson.dumps(value, option=_SORTED) != data:
            return None
        return value if _plain_floats(value) else None
    except (orjson.JSONDecodeError, orjson.JSONEncodeError, RecursionError):
        return None


class _NotCanonical(ValueError):
    pass


class _Suspect(Exception):
    """A number the standard library would write back unchanged although RFC 8785 writes it otherwise."""


def _float_literal(literal: str) -> float:
    # Exponents ("1e-07") and integral floats ("4.0") survive a standard round trip unchanged; RFC 8785 writes
    # them "1e-7" and "4". Every other non-canonical spelling changes in the round trip and is caught there.
    if "e" in literal or "E" in literal or literal.endswith(".0"):
        raise _Suspect
    return float(literal)


def _int_literal(literal: str) -> int:
    if len(literal) > 15:  # possibly beyond I-JSON's 2**53
        raise _Suspect
    return int(literal)


def _constant(name: str) -> float:
    raise _Suspect  # NaN, Infinity: not JSON at all for RFC 8785


_DECODER = json.JSONDecoder(parse_float=_float_literal, parse_int=_int_literal, parse_constant=_constant)
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _astral(text: str) -> bool:
    """Whether ``text`` holds a character beyond the BMP (one that UTF-16 writes as a surrogate pair)."""
    return not text.isascii() and len(text.encode("utf-16-le", "surrogatepass")) != 2 * len(text)


def parse_canonical(body: str, data: bytes | None = None) -> dict[str, Any]:
    """The entry ``body`` encodes, provided ``body`` is exactly its RFC 8785 form; else ValueError.

    :func:`fast_canonical` settles nearly every entry. Otherwise: re-serialising with sorted keys and no
    whitespace is RFC 8785 for everything an entry holds (keys within the BMP, so code-point order is UTF-16
    order; floats without exponent print the same shortest digits); the numbers where the two could differ are
    spotted while parsing, and RFC 8785's own encoder decides those. A duplicated key, whitespace, another
    escape or number spelling all change the bytes, so they are refused.
    """
    fast = fast_canonical(body, body.encode() if data is None else data)
    if fast is not None:
        return fast
    try:
        value = _DECODER.decode(body)
        suspect = False
    except _Suspect:
        # RFC 8785 reads every number as an IEEE double, big integers included.
        value, suspect = json.loads(body, parse_int=lambda n: int(n) if len(n) <= 15 else float(n)), True
    if not isinstance(value, dict):
        raise _NotCanonical("an entry is a JSON object")
    # The standard library sorts keys by code point, RFC 8785 by UTF-16 unit: they differ only where a key
    # holds a character beyond the BMP, so such a document is left to RFC 8785's own encoder.
    if not suspect and not _astral(body) and _ENCODER.encode(value) == body:
        return value
    try:
        canonical = rfc8785.dumps(value).decode()
    except rfc8785.CanonicalizationError as exc:
        raise _NotCanonical(f"not representable in RFC 8785: {exc}") from None
    if canonical != body:
        raise _NotCanonical("the bytes are not the canonical JSON (RFC 8785) of the entry")
    return value


# -- the verifier ------------------------------------------------------------------------------------------

def check_checkpoint_order(group: Sequence[Checkpoint], label: str = "checkpoint") -> None:
    """Within one series of checkpoints (the broker's, or those one auditor kept): time never goes back."""
    ordered = sorted(group, key=lambda c: c.tree_size)
    for before, after in itertools.pairwise(ordered):
        if after.timestamp < before.timestamp:
            raise Inconsistent(Finding(f"{label} of size {after.tree_size} is dated {after.timestamp}, before the "
                                       f"{label} of size {before.tree_size} ({before.timestamp})"))


Row = tuple[int, str, bytes | None, tuple[Any, ...] | None]  # index, entry bytes, claimed leaf hash, columns


@dataclass
class Checked:
    """What checking a run of consecutive entries yields: enough for the sequential part, nothing more."""

    first: int
    leaves: bytes = b""  # 32 bytes per entry that passed, in order
    first_at: str = ""
    last_at: str = ""
    charges: list[tuple[int, Charge]] = field(default_factory=list)
    finding: Finding | None = None  # the first entry that failed; the leaves stop before it


def check_entries(first: int, rows: Iterable[Row]) -> Checked:
    """The checks of each entry on its own (hash, form, index, time within the run, columns, what it charges).

    Independent of every other run of entries, so runs are checked in parallel processes; ``rows`` may hold
    ``columns`` (what the database's filter columns say: at, actor, action, purpose, dataset, decision,
    subject, ``at`` written as the entry writes it).
    """
    out = Checked(first)
    names: dict[str, str] = {}
    name = names.setdefault
    leaves = bytearray()
    expected, last_at = first, ""
    try:
        for index, body, claimed, columns in rows:
            if index != expected:
                what = (f"missing: the sequence jumps from {expected - 1} to {index}" if index > expected
                        else f"out of order: index {index} comes after {expected - 1}")
                raise Inconsistent(Finding(what, expected))
            data = body.encode()
            leaf = sha256(b"\x00" + data).digest()  # rfc9162.leaf_hash, without a call per entry
            if claimed is not None and leaf != claimed:
                raise Inconsistent(Finding(f"the entry hashes to {leaf.hex()[:16]}… but its leaf hash says "
                                           f"{claimed.hex()[:16]}…: the entry was changed", index))
            entry = fast_canonical(body, data)
            if entry is None:
                try:
                    entry = parse_canonical(body, data)
                except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep to read at all
                    raise Inconsistent(Finding(f"not a canonical JSON entry: {exc}", index)) from None
            seq = entry.get("seq")
            if seq != index or type(seq) is not int:  # not True for entry 1
                raise Inconsistent(Finding(f"the entry says it is entry {seq!r}: an entry was "
                                           "inserted, removed or moved here", index))
            at = entry.get("at")
            if not isinstance(at, str) or len(at) != 27 or not _TIMESTAMP.match(at):
                raise Inconsistent(Finding(f"time {at!r} is not RFC 3339 UTC with microseconds", index))
            if at < last_at:
                raise Inconsistent(Finding(f"time goes backwards: {at} after {last_at}", index))
            if columns is not None:
                said = tuple(map(entry.get, COLUMNS))  # one C-level loop; "at" is the string checked above
                if said != columns:
                    name, held, says = next((n, c, e) for n, c, e in zip(COLUMNS, columns, said, strict=True)
                                            if c != e)
                    raise Inconsistent(Finding(f"column {name} holds {held!r} but the entry says {says!r}", index))
            if entry.get("action") == actions.QUERY:
                charge = charge_of(entry)
                if isinstance(charge, str):
                    raise Inconsistent(Finding(charge, index))
                if charge is not None:
                    # The same few names recur in every query: one object each, so the run's result pickles
                    # each name once on its way back from the worker process.
                    service, purpose, dataset, period, *amounts = charge
                    out.charges.append((index, (name(service, service), name(purpose, purpose),
                                                name(dataset, dataset), name(period, period), *amounts)))
            leaves += leaf
            out.first_at = out.first_at or at
            last_at = at
            expected += 1
    except Inconsistent as exc:
        out.finding = exc.finding
    out.leaves, out.last_at = bytes(leaves), last_at
    return out


class LogVerifier:
    """The sequential part: the tree, the stored nodes, the checkpoints' roots, the budgets, time across runs.

    ``stored_nodes(first, count)`` returns the stored hashes of nodes ``first .. first + count - 1`` (by
    :func:`broker.audit.tree.node_id`); only the first ``nodes_to_compare`` nodes exist (the integrated tree).
    """

    def __init__(self, kept: Sequence[Checkpoint], *,
                 stored_nodes: Callable[[int, int], list[bytes]] | None = None, nodes_to_compare: int = 0) -> None:
        self.tree = rfc9162.CompactRange()
        self.replay = BudgetReplay()
        self.last_at = ""
        self.roots_checked = 0
        self.nodes_compared = 0
        self._pending = deque(sorted(kept, key=lambda c: c.tree_size))
        self._matched_size = 0
        self._stored = stored_nodes
        self._nodes_total = nodes_to_compare if stored_nodes is not None else 0
        self._node_rank = 0
        self._check_roots()

    @property
    def count(self) -> int:
        return self.tree.size

    def fold(self, checked: Checked) -> None:
        """Fold a checked run in, in order; raises Inconsistent at the first problem, wherever it lies."""
        if checked.first != self.count:
            raise Inconsistent(Finding(f"missing: the sequence jumps from {self.count - 1} to {checked.first}",
                                       self.count))
        if checked.leaves and checked.first_at < self.last_at:
            raise Inconsistent(Finding(f"time goes backwards: {checked.first_at} after {self.last_at}",
                                       checked.first))
        findings: list[Finding] = []
        for index, charge in checked.charges:
            problem = self.replay.apply(charge)
            if problem is not None:
                findings.append(Finding(problem, index))
                break
        found = self._fold_leaves(checked.leaves)
        if found is not None:
            findings.append(found)
        if findings:
            raise Inconsistent(min(findings, key=lambda f: f.index if f.index is not None else -1))
        if checked.leaves:
            self.last_at = checked.last_at
        if checked.finding is not None:
            raise Inconsistent(checked.finding)

    def _fold_leaves(self, leaves: bytes) -> Finding | None:
        """Append the leaves, stopping at each checkpoint's size to compare roots; the first problem, if any."""
        offset = 0
        while offset < len(leaves):
            stop = len(leaves)
            if self._pending:
                stop = min(stop, offset + (self._pending[0].tree_size - self.tree.size) * 32)
            nodes: list[bytes] = []
            self.tree.extend(leaves[offset:stop], nodes)
            found = self._compare_nodes(nodes)
            if found is not None:
                return found
            try:
                self._check_roots()
            except Inconsistent as exc:
                return exc.finding
            offset = stop
        return None

    def _compare_nodes(self, computed: list[bytes]) -> Finding | None:
        wanted = min(len(computed), self._nodes_total - self._node_rank)
        if wanted <= 0 or self._stored is None:
            return None
        stored = self._stored(self._node_rank, wanted)
        if stored != computed[:wanted]:
            bad = next((k for k in range(wanted) if k >= len(stored) or stored[k] != computed[k]), wanted)
            level, index = node_key(self._node_rank + bad)
            first, last = index << level, ((index + 1) << level) - 1
            return Finding(f"entries {first}..{last}: the stored subtree hash differs from the one recomputed from "
                           "the entries (entries or stored tree changed)", first)
        self._node_rank += wanted
        self.nodes_compared += wanted
        return None

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
        if self._node_rank < self._nodes_total:
            raise Inconsistent(Finding(f"the stored tree lacks {self._nodes_total - self._node_rank} subtree "
                                       "hash(es)"))
