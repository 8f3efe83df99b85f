"""Every row of one chunk of the demo city, ready for the bulk writer: no database access here.

A :class:`ChunkPlan` holds what all chunks share and pickles, so a worker process can produce chunks while
the parent writes (see :mod:`broker.demo.producer`). The rows of chunk ``i`` depend only on the plan and
``numpy.random.default_rng([seed, i])``, wherever they are produced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np

from broker.consent.models import ConsentRecord, Notice
from broker.demo.consents import CONSENT_COLUMNS, generate_consents
from broker.demo.evidence import EvidenceFactory
from broker.demo.guardianships import GUARDIANSHIP_COLUMNS, guardianship_rows
from broker.demo.loader import StorageFormat
from broker.demo.population import CITIZEN_COLUMNS, CitizenBatch, citizen_rows, generate_citizens, pick_guardians
from broker.demo.profiles import profile_for
from broker.demo.records import dataset_rows, record_counts, vault_columns
from broker.demo.timestamps import format_days
from broker.identity.models import Guardianship
from broker.keys import Secrets
from broker.policy.schema import Policy
from broker.vault.tables import table_name

Rows = list[tuple[str, tuple[str, ...], list[tuple]]]  # (table, columns, rows) in writing order
LINK_STREAM = 2  # guardianship link ids draw from their own stream, apart from the chunk's main one


@dataclass
class ChunkPlan:
    """What does not change from one chunk to the next."""

    policy: Policy
    secrets: Secrets
    seed: int
    domain: str
    districts: list[str]
    notice_rows: dict[str, dict[str, Any]]  # purpose id -> Notice columns (rebuilt per process)
    today: date
    today_us: int
    records_per_citizen: float
    check_all: bool
    storage: StorageFormat
    _notices: dict[str, Notice] = field(default_factory=dict, repr=False)
    _evidence: EvidenceFactory | None = field(default=None, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        # ORM objects and the evidence templates are rebuilt on the other side, not pickled.
        return {**self.__dict__, "_notices": {}, "_evidence": None}

    @property
    def notices(self) -> dict[str, Notice]:
        if not self._notices:
            self._notices = {pid: Notice(**row) for pid, row in self.notice_rows.items()}
        return self._notices

    @property
    def evidence(self) -> EvidenceFactory:
        if self._evidence is None:
            self._evidence = EvidenceFactory()
        return self._evidence


def chunk_rows(plan: ChunkPlan, index: int, first_ordinal: int, size: int) -> Rows:
    """Citizens ``first_ordinal ..`` of chunk ``index``: their rows, consent records and vault records."""
    rng = np.random.default_rng([plan.seed, index])
    batch = generate_citizens(rng, first_ordinal=first_ordinal, n=size, today=plan.today, districts=plan.districts)
    guardians = pick_guardians(rng, batch)
    citizens = citizen_rows(batch, plan.secrets, plan.domain, birth_text=format_days(batch.birth),
                            registered_text=plan.storage.instants(batch.registered_us), districts=plan.districts)
    consents = generate_consents(rng, plan.policy, batch, guardians, plan.notices, plan.evidence,
                                 today_us=plan.today_us, storage_instants=plan.storage.instants,
                                 jurisdiction=plan.policy.broker.jurisdiction, check_all=plan.check_all)
    links = guardianship_rows(np.random.default_rng([plan.seed, index, LINK_STREAM]), batch, guardians,
                              storage_instants=plan.storage.instants)
    return [("citizen", CITIZEN_COLUMNS, citizens),
            (Guardianship.__tablename__, GUARDIANSHIP_COLUMNS, links),
            (ConsentRecord.__tablename__, CONSENT_COLUMNS, consents.rows),
            *record_rows(plan, rng, batch, consents.given_now)]


def record_rows(plan: ChunkPlan, rng: np.random.Generator, batch: CitizenBatch,
                given_now: dict[str, np.ndarray]) -> Rows:
    """Vault rows of ``batch`` for every dataset; who has data depends on who consents to what."""
    policy = plan.policy
    out: Rows = []
    shares = {d.id: profile_for(d.id).share for d in policy.datasets}
    total_share = sum(shares.values()) or 1.0
    for dataset in policy.datasets:
        profile = profile_for(dataset.id)
        users = [p for p in policy.purposes if p.status == "active" and dataset.id in p.dataset_ids]
        consenting = np.zeros(len(batch), dtype=bool)
        for purpose in users:
            if purpose.id in given_now:
                consenting |= given_now[purpose.id]
        counts = record_counts(
            rng, age=batch.age, consenting=consenting, public_task=any(not p.takes_consent for p in users),
            minimum_age=profile.minimum_age, daily=profile.daily,
            expected_rows=plan.records_per_citizen * len(batch) * shares[dataset.id] / total_share,
        )
        rows = dataset_rows(
            rng, dataset, counts=counts, pseudonyms=batch.pseudonyms, home=batch.district, age=batch.age,
            districts=plan.districts, domains=dict(policy.broker.domains), today_us=plan.today_us,
            batch_id=f"demo-seed-{plan.seed}", storage_instants=plan.storage.instants, generators=profile.fields,
            daily=profile.daily, hours=profile.hours,
        )
        out.append((table_name(dataset.id), vault_columns(dataset), rows))
    return out
