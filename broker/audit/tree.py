"""The Merkle tree as stored: leaf hashes in ``audit_entry``, perfect subtrees in ``audit_node``.

A perfect subtree of ``2**level`` leaves starting at leaf ``index * 2**level`` is stored under
:func:`node_id`, its rank in the order nodes complete as leaves are appended (the tree of ``n`` leaves has
``n - popcount(n)`` of them, ids ``0 .. n - popcount(n) - 1``). The integrator writes them in that order and
``audit verify`` reads them back in it, one sequential scan, comparing each with the node it recomputes.

Any ``MTH(D[lo:hi])`` that RFC 9162's proofs ask for is a fold of O(log n) perfect subtrees, so a proof is
one query for the hashes it needs, then a few hashes in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlalchemy import Connection, select

from broker.audit import rfc9162
from broker.audit.models import AuditEntry, AuditNode

_ENTRIES = AuditEntry.__table__
_NODES = AuditNode.__table__
Key = tuple[int, int]  # (level, index within the level); level 0 is a leaf
FETCH_CHUNK = 500  # ids per IN (...): well under every driver's limit on bound parameters


def node_id(level: int, index: int) -> int:
    """The rank of perfect subtree (level >= 1, index) in completion order."""
    end = (index + 1) << level  # the tree size at which this node completes
    return (end - 1) - (end - 1).bit_count() + level - 1


def node_key(ident: int) -> Key:
    """The inverse of :func:`node_id`: (level, index) of the node with this id."""
    lo, hi = 1, 2
    while hi - hi.bit_count() <= ident:  # the first tree size with more than ``ident + 1`` nodes
        hi *= 2
    while lo < hi:  # the smallest size e with e - popcount(e) > ident
        mid = (lo + hi) // 2
        if mid - mid.bit_count() > ident:
            hi = mid
        else:
            lo = mid + 1
    end = lo
    level = ident - ((end - 1) - (end - 1).bit_count()) + 1
    return level, (end >> level) - 1


def perfect_keys(lo: int, hi: int) -> list[Key]:
    """The aligned perfect subtrees whose fold (RFC 9162's split, right to left) is MTH(D[lo:hi])."""
    keys: list[Key] = []
    while hi - lo > 0:
        size = hi - lo
        if size & (size - 1) == 0 and lo % size == 0:
            keys.append((size.bit_length() - 1, lo // size))
            break
        k = rfc9162.split(size)
        if lo % k:
            raise ValueError(f"D[{lo}:{hi}] is not a range RFC 9162's recursion produces")
        keys.append((k.bit_length() - 1, lo // k))
        lo += k
    return keys


def fold(keys: list[Key], hashes: dict[Key, bytes]) -> bytes:
    digest = hashes[keys[-1]]
    for key in reversed(keys[:-1]):
        digest = rfc9162.node_hash(hashes[key], digest)
    return digest


class StoredTree:
    """Read-only view of the stored tree, for proofs and roots over sizes the integrator has folded."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def fetch(self, keys: Iterable[Key]) -> dict[Key, bytes]:
        wanted = set(keys)
        leaves = sorted(index for level, index in wanted if level == 0)
        nodes = {node_id(level, index): (level, index) for level, index in wanted if level > 0}
        ids = sorted(nodes)
        found: dict[Key, bytes] = {}
        for start in range(0, len(leaves), FETCH_CHUNK):
            rows = self.connection.execute(select(_ENTRIES.c.seq, _ENTRIES.c.leaf_hash)
                                           .where(_ENTRIES.c.seq.in_(leaves[start:start + FETCH_CHUNK])))
            found.update({(0, seq): bytes(digest) for seq, digest in rows})
        for start in range(0, len(ids), FETCH_CHUNK):
            rows = self.connection.execute(select(_NODES.c.id, _NODES.c.hash)
                                           .where(_NODES.c.id.in_(ids[start:start + FETCH_CHUNK])))
            found.update({nodes[ident]: bytes(digest) for ident, digest in rows})
        missing = wanted - found.keys()
        if missing:
            raise LookupError(f"the stored tree lacks {len(missing)} node(s), e.g. {sorted(missing)[0]}")
        return found

    def paths(self, requests: list[tuple[Callable[..., list[bytes]], int, int]]) -> list[list[bytes]]:
        """Run proof generators twice: once to learn which subtrees they need, then (after one query for all
        of them) with the hashes."""
        wanted: dict[tuple[int, int], list[Key]] = {}

        def plan(lo: int, hi: int) -> bytes:
            wanted[(lo, hi)] = perfect_keys(lo, hi)
            return b""

        for build, a, b in requests:
            build(a, b, plan)
        hashes = self.fetch(key for keys in wanted.values() for key in keys)
        return [build(a, b, lambda lo, hi: fold(wanted[(lo, hi)], hashes)) for build, a, b in requests]

    def inclusion_path(self, index: int, size: int) -> list[bytes]:
        return self.paths([(rfc9162.inclusion_path, index, size)])[0]

    def inclusion_paths(self, indexes: Iterable[int], size: int) -> list[list[bytes]]:
        return self.paths([(rfc9162.inclusion_path, index, size) for index in indexes])

    def consistency_path(self, first: int, second: int) -> list[bytes]:
        return self.paths([(rfc9162.consistency_path, first, second)])[0]

    def root(self, size: int) -> bytes:
        if size == 0:
            return rfc9162.EMPTY_ROOT
        keys = perfect_keys(0, size)
        return fold(keys, self.fetch(keys))

    def peaks(self, size: int) -> list[bytes]:
        """The perfect subtrees covering D[0:size], biggest first (the state of a :class:`CompactRange`)."""
        keys = [(level, start >> level) for level, start in rfc9162.CompactRange.peak_ranges(size)]
        hashes = self.fetch(keys)
        return [hashes[key] for key in keys]

    def leaf_hash(self, index: int) -> bytes:
        return self.fetch([(0, index)])[(0, index)]
