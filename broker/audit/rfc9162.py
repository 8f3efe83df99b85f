"""RFC 9162 §2.1: the Merkle tree of Certificate Transparency 2.0. https://www.rfc-editor.org/rfc/rfc9162#section-2.1

* Leaf hash ``SHA-256(0x00 || entry)``, node hash ``SHA-256(0x01 || left || right)`` (§2.1.1): the prefixes keep a
  leaf from ever passing for a node (second-preimage).
* ``MTH(D[n])`` splits at ``k``, the largest power of two smaller than ``n``; the last node is never duplicated.
* Inclusion proofs (§2.1.3) and consistency proofs (§2.1.4), generated and verified exactly as the RFC writes
  them, so any RFC 9162 client checks what the broker serves.

Proof generation takes ``subtree(lo, hi)``, the MTH of ``D[lo:hi]``; every range it asks for is one the RFC's
recursion produces, and :class:`broker.audit.tree.StoredTree` answers each from stored perfect subtrees.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

Subtree = Callable[[int, int], bytes]

EMPTY_ROOT = hashlib.sha256(b"").digest()  # §2.1.1: MTH({}) = HASH()


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split(n: int) -> int:
    """``k``: the largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_path(index: int, size: int, subtree: Subtree) -> list[bytes]:
    """§2.1.3.1 ``PATH(m, D[n])``: the sibling of each node from the leaf up to the root."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    top_down: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = split(hi - lo)
        if index < lo + k:  # PATH(m, D[0:k]) : MTH(D[k:n])
            top_down.append(subtree(lo + k, hi))
            hi = lo + k
        else:  # PATH(m - k, D[k:n]) : MTH(D[0:k])
            top_down.append(subtree(lo, lo + k))
            lo += k
    return top_down[::-1]


def consistency_path(first: int, second: int, subtree: Subtree) -> list[bytes]:
    """§2.1.4.1 ``PROOF(m, D[n]) = SUBPROOF(m, D[n], true)``, for 0 < m < n."""
    if not 0 < first < second:
        raise ValueError(f"no consistency proof from size {first} to size {second}")
    top_down: list[bytes] = []
    lo, hi, m, whole = 0, second, first, True
    while hi - lo != m:
        k = split(hi - lo)
        if m <= k:  # SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
            top_down.append(subtree(lo + k, hi))
            hi = lo + k
        else:  # SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
            top_down.append(subtree(lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    if not whole:  # SUBPROOF(m, D[m], false) = {MTH(D[m])}
        top_down.append(subtree(lo, hi))
    return top_down[::-1]


def root_from_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes | None:
    """§2.1.3.2 steps 1-5; the root the proof leads to, or None where the RFC says "fail"."""
    if index >= size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return r if sn == 0 else None


def verify_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes], root: bytes) -> bool:
    return root_from_inclusion(index, size, leaf, path) == root


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes,
                       path: Sequence[bytes]) -> bool:
    """§2.1.4.2. Equal sizes prove themselves with an empty path, as does the empty tree (nothing to prove)."""
    if first == second:
        return not path and first_root == second_root
    if first == 0:
        return not path and first_root == EMPTY_ROOT
    if not 0 < first < second or not path:
        return False
    nodes = list(path)
    if first & (first - 1) == 0:  # first is an exact power of two: its root is a node of the second tree
        nodes.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = nodes[0]
    for c in nodes[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == first_root and sr == second_root and sn == 0


class CompactRange:
    """The perfect subtrees covering ``D[0:size]``, biggest first: O(log n) state to append leaves and read roots.

    Appending folds equal neighbours into their parent and reports each finished node to ``on_node(level,
    index, hash)`` (index counted within its level), in the order the nodes complete.
    """

    def __init__(self, size: int = 0, peaks: Sequence[bytes] = ()) -> None:
        levels = [bit for bit in range(size.bit_length() - 1, -1, -1) if size >> bit & 1]
        if len(levels) != len(peaks):
            raise ValueError(f"a tree of size {size} has {len(levels)} peaks, not {len(peaks)}")
        self.size = size
        self._stack = list(zip(levels, peaks, strict=True))

    @staticmethod
    def peak_ranges(size: int) -> list[tuple[int, int]]:
        """(level, start leaf) of each perfect subtree covering ``D[0:size]``, biggest first."""
        out, start = [], 0
        for bit in range(size.bit_length() - 1, -1, -1):
            if size >> bit & 1:
                out.append((bit, start))
                start += 1 << bit
        return out

    def append(self, leaf: bytes, on_node: Callable[[int, int, bytes], None] | None = None) -> None:
        stack, level, digest = self._stack, 0, leaf
        self.size += 1
        while stack and stack[-1][0] == level:
            digest = node_hash(stack.pop()[1], digest)
            level += 1
            if on_node is not None:
                on_node(level, (self.size >> level) - 1, digest)
        stack.append((level, digest))

    def extend(self, leaves: bytes, nodes: list[bytes]) -> None:
        """Append concatenated 32-byte leaf hashes, adding each finished node's hash to ``nodes`` (the fast
        path of ``audit verify``: no call per node)."""
        stack, sha = self._stack, hashlib.sha256
        size = self.size
        for offset in range(0, len(leaves), 32):
            level, digest = 0, leaves[offset:offset + 32]
            size += 1
            while stack and stack[-1][0] == level:
                digest = sha(b"\x01" + stack.pop()[1] + digest).digest()
                level += 1
                nodes.append(digest)
            stack.append((level, digest))
        self.size = size

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        digest = self._stack[-1][1]
        for _, peak in reversed(self._stack[:-1]):
            digest = node_hash(peak, digest)
        return digest
