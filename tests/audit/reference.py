"""An independent RFC 9162 verifier, written for the tests from the RFC's definitions (not from broker code).

https://www.rfc-editor.org/rfc/rfc9162#section-2.1. Where the broker verifies with the bit-shifting
algorithms of §2.1.3.2 and §2.1.4.2, this one follows the recursive definitions of §2.1.1 (MTH), §2.1.3.1
(PATH) and §2.1.4.1 (SUBPROOF) literally: it rebuilds the roots a proof implies by walking the same recursion
that produced it, consuming the proof from its end. Two readings of the RFC that agree on every tree size
and index are a good sign that both are right.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf(entry: bytes) -> bytes:
    return sha256(b"\x00" + entry)


def node(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right)


def k_for(n: int) -> int:
    """"the largest power of two smaller than n (i.e., k < n <= 2k)"."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) from the leaf hashes, by §2.1.1's recursion."""
    n = len(leaf_hashes)
    if n == 0:
        return sha256(b"")
    if n == 1:
        return leaf_hashes[0]
    k = k_for(n)
    return node(mth(leaf_hashes[:k]), mth(leaf_hashes[k:]))


def inclusion_root(m: int, n: int, leaf_hash: bytes, path: Sequence[bytes]) -> bytes | None:
    """The root PATH(m, D[n]) = ``path`` leads to from the leaf, or None if the path has the wrong shape.

    PATH(0, {d(0)}) = {}; for n > 1: PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n]) if m < k,
    else PATH(m - k, D[k:n]) : MTH(D[0:k]).
    """
    if not 0 <= m < n:
        return None
    if n == 1:
        return leaf_hash if len(path) == 0 else None
    if not path:
        return None
    k = k_for(n)
    rest, last = path[:-1], path[-1]
    if m < k:
        left = inclusion_root(m, k, leaf_hash, rest)
        return None if left is None else node(left, last)
    right = inclusion_root(m - k, n - k, leaf_hash, rest)
    return None if right is None else node(last, right)


def verify_inclusion(m: int, n: int, leaf_hash: bytes, path: Sequence[bytes], root: bytes) -> bool:
    return inclusion_root(m, n, leaf_hash, path) == root


def _subproof_roots(m: int, n: int, whole: bool, path: Sequence[bytes],
                    first_root: bytes) -> tuple[bytes, bytes] | None:
    """(MTH(D[0:m]) as seen by the subtree, MTH(D[n])) that SUBPROOF(m, D[n], b) = ``path`` implies.

    SUBPROOF(m, D[m], true) = {}; SUBPROOF(m, D[m], false) = {MTH(D[m])}; for m < n:
    SUBPROOF(m, D[n], b) = SUBPROOF(m, D[0:k], b) : MTH(D[k:n]) if m <= k,
    else SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k]).
    """
    if m == n:
        if whole:
            return (first_root, first_root) if not path else None
        return (path[0], path[0]) if len(path) == 1 else None
    if not path or not 0 < m < n:
        return None
    k = k_for(n)
    rest, last = path[:-1], path[-1]
    if m <= k:
        inner = _subproof_roots(m, k, whole, rest, first_root)
        return None if inner is None else (inner[0], node(inner[1], last))
    inner = _subproof_roots(m - k, n - k, False, rest, first_root)
    return None if inner is None else (node(last, inner[0]), node(last, inner[1]))


def verify_consistency(m: int, n: int, first_root: bytes, second_root: bytes, path: Sequence[bytes]) -> bool:
    """PROOF(m, D[n]) = SUBPROOF(m, D[n], true), for 0 < m < n; equal trees need no proof."""
    if m == n:
        return not path and first_root == second_root
    roots = _subproof_roots(m, n, True, list(path), first_root)
    return roots is not None and roots == (first_root, second_root)
