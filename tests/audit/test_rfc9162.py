"""The Merkle tree algorithms (broker.audit.rfc9162) against the RFC's test vectors and an independent verifier."""

from __future__ import annotations

import functools
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.audit import rfc9162
from broker.audit.tree import node_id
from tests.audit import reference

# The RFC 6962 test vectors (leaves and roots), used by every Certificate Transparency implementation.
CT_LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                         "606162636465666768696a6b6c6d6e6f")]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_INCLUSION = {
    (0, 8): ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    (5, 8): ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
}
CT_CONSISTENCY = {
    (1, 8): ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    (6, 8): ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
}
MAX_SIZE = 300
MAX_CONSISTENCY_SIZE = 120


def leaves_of(n: int) -> list[bytes]:
    return [reference.leaf(f"entry {i}".encode()) for i in range(n)]


LEAVES = leaves_of(MAX_SIZE)


@functools.cache
def subtree(lo: int, hi: int) -> bytes:
    return reference.mth(LEAVES[lo:hi])


def test_hashes_are_rfc_9162_leaf_and_node_hashes() -> None:
    assert rfc9162.EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert rfc9162.leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert rfc9162.node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()


def test_roots_and_proofs_match_the_rfc_6962_vectors() -> None:
    leaf_hashes = [rfc9162.leaf_hash(entry) for entry in CT_LEAVES]
    tree = rfc9162.CompactRange()
    for size, expected in enumerate(CT_ROOTS, start=1):
        tree.append(leaf_hashes[size - 1])
        assert tree.root().hex() == expected
        assert reference.mth(leaf_hashes[:size]).hex() == expected

    def vector_subtree(lo: int, hi: int) -> bytes:
        return reference.mth(leaf_hashes[lo:hi])

    for (index, size), path in CT_INCLUSION.items():
        assert [h.hex() for h in rfc9162.inclusion_path(index, size, vector_subtree)] == path
    for (first, second), path in CT_CONSISTENCY.items():
        assert [h.hex() for h in rfc9162.consistency_path(first, second, vector_subtree)] == path


def test_every_inclusion_proof_up_to_300_leaves_verifies_independently() -> None:
    tree = rfc9162.CompactRange()
    for size in range(1, MAX_SIZE + 1):
        tree.append(LEAVES[size - 1])
        root = tree.root()
        assert root == subtree(0, size)
        for index in range(size):
            path = rfc9162.inclusion_path(index, size, subtree)
            assert reference.verify_inclusion(index, size, LEAVES[index], path, root), (index, size)
            assert rfc9162.verify_inclusion(index, size, LEAVES[index], path, root)


def test_every_consistency_proof_between_sizes_up_to_120_verifies_independently() -> None:
    for second in range(1, MAX_CONSISTENCY_SIZE + 1):
        new_root = subtree(0, second)
        for first in range(1, second + 1):
            old_root = subtree(0, first)
            path = rfc9162.consistency_path(first, second, subtree) if first < second else []
            assert reference.verify_consistency(first, second, old_root, new_root, path), (first, second)
            assert rfc9162.verify_consistency(first, second, old_root, new_root, path)


def test_consistency_from_the_empty_tree_and_between_equal_trees() -> None:
    root = subtree(0, 5)
    assert rfc9162.verify_consistency(0, 5, rfc9162.EMPTY_ROOT, root, [])
    assert rfc9162.verify_consistency(5, 5, root, root, [])
    assert not rfc9162.verify_consistency(5, 5, root, subtree(0, 4), [])
    assert not rfc9162.verify_consistency(5, 4, root, subtree(0, 4), [b"x" * 32])


@given(data=st.data())
def test_altered_proofs_are_refused_by_both_verifiers(data: st.DataObject) -> None:
    size = data.draw(st.integers(2, MAX_SIZE))
    index = data.draw(st.integers(0, size - 1))
    root = subtree(0, size)
    path = rfc9162.inclusion_path(index, size, subtree)
    position = data.draw(st.integers(0, len(path) - 1))
    bad = [bytes(32) if i == position else h for i, h in enumerate(path)]
    for verify in (rfc9162.verify_inclusion, reference.verify_inclusion):
        assert not verify(index, size, LEAVES[index], bad, root)
        assert not verify(index, size, LEAVES[index], path[:-1], root)  # too short
        assert not verify(index, size, LEAVES[index], [*path, path[0]], root)  # too long
        assert not verify(index, size, LEAVES[(index + 1) % size], path, root)  # another leaf


@given(data=st.data())
def test_a_consistency_proof_does_not_prove_another_history(data: st.DataObject) -> None:
    second = data.draw(st.integers(3, MAX_CONSISTENCY_SIZE))
    first = data.draw(st.integers(1, second - 1))
    path = rfc9162.consistency_path(first, second, subtree)
    forged_old = reference.mth([*LEAVES[:first - 1], reference.leaf(b"rewritten")])
    for verify in (rfc9162.verify_consistency, reference.verify_consistency):
        assert not verify(first, second, forged_old, subtree(0, second), path)
        assert not verify(first, second, subtree(0, first), subtree(0, second), path[:-1])


def test_the_compact_range_reports_each_perfect_subtree_once_in_completion_order() -> None:
    seen: list[tuple[int, int]] = []

    def keep(level: int, index: int, digest: bytes) -> None:
        assert digest == subtree(index << level, (index + 1) << level)
        seen.append((level, index))

    tree = rfc9162.CompactRange()
    for n in range(64):
        tree.append(LEAVES[n], keep)
    assert len(seen) == len(set(seen)) == 64 - 1
    assert [node_id(level, index) for level, index in seen] == list(range(63))
    resumed = rfc9162.CompactRange(37, [subtree(0, 32), subtree(32, 36), subtree(36, 37)])
    resumed.append(LEAVES[37])
    assert resumed.root() == subtree(0, 38)


@pytest.mark.parametrize("size", [0, 1, 5, 64, 299])
def test_peak_ranges_cover_the_tree(size: int) -> None:
    ranges = rfc9162.CompactRange.peak_ranges(size)
    assert sum(1 << level for level, _ in ranges) == size
