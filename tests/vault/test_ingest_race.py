"""Two requests with one batch id at the same time store the batch once (both databases).

The first transaction stores the batch and holds it uncommitted while the second runs: on PostgreSQL the
second waits on the unique key, fails, and answers from the committed row; on SQLite it waits for the write
lock and then finds the row. Either way it is a replay, and the records are there once.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from sqlmodel import Session, select

from broker.audit.models import AuditEntry
from broker.db import is_sqlite, session_scope
from broker.runtime import Runtime
from broker.vault.ingest import IngestOutcome, IngestService
from tests.vault.conftest import PROVIDER, Vault


def _ingest(runtime: Runtime, session: Session, body: bytes) -> IngestOutcome:
    service = runtime.policy.service(PROVIDER)
    assert service is not None
    return IngestService(session, runtime.policy, runtime.secrets).ingest(
        client_id=PROVIDER, service=service, dataset_id="household-energy", body=body, now=runtime.clock.now())


def test_a_concurrent_duplicate_is_a_replay_and_stores_nothing(vault: Vault, runtime: Runtime,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    citizens = vault.citizens(3)
    records = [{"citizen_id": c, "day": "2026-03-01T00:00:00Z", "energy_wh": 1000 + i}
               for i, c in enumerate(citizens)]
    body = json.dumps({"batch_id": "race-1", "records": records}).encode()

    first = Session(runtime.engine, expire_on_commit=False)
    outcome_first = _ingest(runtime, first, body)  # stored, not yet committed
    assert outcome_first.receipt is not None and outcome_first.receipt.created

    second: dict[str, Any] = {}
    lookups: list[bool] = []  # the second request's look-ups of the batch id: found or not
    original = IngestService._stored

    def watched(self: IngestService, *args: str) -> Any:
        found = original(self, *args)
        if threading.current_thread() is not threading.main_thread():
            lookups.append(found is not None)
        return found

    monkeypatch.setattr(IngestService, "_stored", watched)

    def run_second() -> None:
        with session_scope(runtime.engine) as session:
            second["outcome"] = _ingest(runtime, session, body)

    thread = threading.Thread(target=run_second)
    thread.start()
    time.sleep(0.5)  # let the second request reach the lock or the unique key and wait there
    assert thread.is_alive()
    first.commit()
    first.close()
    thread.join(timeout=30)
    assert not thread.is_alive()

    # PostgreSQL: not found, the insert fails on the unique key, found. SQLite: found at once.
    assert lookups == ([True] if is_sqlite(runtime.engine) else [False, True])
    outcome = second["outcome"]
    assert outcome.refusal is None
    assert outcome.receipt is not None and not outcome.receipt.created and outcome.receipt.accepted == 3
    assert sorted(r["energy_wh"] for r in vault.rows("household-energy")) == [1000, 1001, 1002]
    with session_scope(runtime.engine) as session:
        details = [json.loads(e.body)["details"] for e in session.exec(
            select(AuditEntry).where(AuditEntry.action == "ingest").order_by(AuditEntry.seq)).all()]
    assert details == [{"batch_id": "race-1", "records": 3}, {"batch_id": "race-1", "records": 3, "replay": True}]
