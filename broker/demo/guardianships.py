"""The demo city's guardianship links: each minor the population gave a guardian is linked to them, as the
city's registry would have recorded it, so that every consent a guardian gave in the seeded history is one
the ledger would have accepted (a guardian speaks only through a link in force).

A link starts when both the guardian and the minor are registered; consents a guardian gives are drawn
after that (see :mod:`broker.demo.consents`). Ids come from their own generator stream, so adding links
left every other seeded row as it was.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from broker.audit import actions
from broker.demo.population import CitizenBatch, uuid4_strings
from broker.identity.guardianship import Basis

GUARDIANSHIP_COLUMNS = ("id", "guardian_id", "minor_id", "basis", "established_by", "since", "ended_at",
                        "ended_by")


def link_since(batch: CitizenBatch, guardians: np.ndarray) -> np.ndarray:
    """Per citizen, µs since the epoch from which their guardian's link holds (their registration if none)."""
    guardian_registered = batch.registered_us[np.maximum(guardians, 0)]
    return np.where(guardians >= 0, np.maximum(batch.registered_us, guardian_registered), batch.registered_us)


def guardianship_rows(rng: np.random.Generator, batch: CitizenBatch, guardians: np.ndarray, *,
                      storage_instants: Callable[[np.ndarray], list[str]]) -> list[tuple]:
    minors = np.flatnonzero(guardians >= 0)
    if minors.size == 0:
        return []
    ids = uuid4_strings(rng, minors.size)
    since = storage_instants(link_since(batch, guardians)[minors])
    return [(ids[k], batch.ids[guardians[i]], batch.ids[i], Basis.registry.value, actions.OPERATOR, since[k],
             None, None)
            for k, i in enumerate(minors.tolist())]
