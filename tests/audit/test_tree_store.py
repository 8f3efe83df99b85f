"""The stored tree: proofs served from the database, for every size and index, checked independently."""

from __future__ import annotations

from typing import Any

import rfc8785
from sqlalchemy import Engine, func, select

from broker.audit import rfc9162
from broker.audit.integrator import integrate
from broker.audit.models import AuditNode
from broker.audit.tree import StoredTree
from broker.db import session_scope
from broker.keys import KeyRing, Secrets
from broker.timeutil import FixedClock
from tests.audit import reference
from tests.audit.conftest import Append, entries_of

SIZE = 300
CONSISTENCY_SIZE = 100


def test_proofs_from_the_database_verify_for_every_size_and_index(
        engine: Engine, append: Append, secrets: Secrets, clock: FixedClock, keyring: KeyRing) -> None:
    # Integrate at irregular sizes, so that the stored tree is built in many differently shaped batches.
    for step in (1, 1, 2, 3, 7, 16, 50, 20, 100, 100):
        append(step, per_transaction=25)
        integrate(engine, secrets, clock, batch=13)
    # The leaves, recomputed from the entries by the test itself (RFC 8785 by the library, not by the broker).
    leaves = [reference.leaf(rfc8785.dumps(entry)) for entry in entries_of(engine)]
    assert len(leaves) == SIZE
    with session_scope(engine) as session:
        connection = session.connection()
        assert connection.execute(select(func.count()).select_from(AuditNode)).scalar() == SIZE - SIZE.bit_count()
        tree = StoredTree(connection)
        for size in range(1, SIZE + 1):
            root = reference.mth(leaves[:size])
            assert tree.root(size) == root
            paths = tree.inclusion_paths(range(size), size)
            for index, path in enumerate(paths):
                assert reference.verify_inclusion(index, size, leaves[index], path, root), (index, size)
        for second in range(2, CONSISTENCY_SIZE + 1):
            requests: list[Any] = [(rfc9162.consistency_path, first, second) for first in range(1, second)]
            for first, path in enumerate(tree.paths(requests), start=1):
                assert reference.verify_consistency(first, second, reference.mth(leaves[:first]),
                                                    reference.mth(leaves[:second]), path), (first, second)


def test_integration_signs_one_checkpoint_per_new_size_and_none_when_idle(
        engine: Engine, append: Append, secrets: Secrets, clock: FixedClock, keyring: KeyRing) -> None:
    first = integrate(engine, secrets, clock)
    assert first is not None and first.tree_size == 0 and first.root == rfc9162.EMPTY_ROOT
    assert integrate(engine, secrets, clock) is None
    append(5)
    clock.advance(seconds=-30)  # a worker whose clock runs behind
    second = integrate(engine, secrets, clock)
    assert second is not None and second.tree_size == 5 and second.timestamp >= first.timestamp
    assert integrate(engine, secrets, clock) is None
