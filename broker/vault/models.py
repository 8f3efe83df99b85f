"""Tables of the vault area that the policy does not declare (the dataset tables are in ``tables.py``).

``ingest_batch`` remembers every batch a provider stored, keyed by (client, dataset, the client's batch id),
so that a retried request never stores its records twice. It holds no citizen identifier and no value: only
a keyed hash of the batch (to tell a retry from a different batch under the same id) and a count.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, ForeignKey, String, UniqueConstraint
from sqlmodel import Field, SQLModel


class IngestBatch(SQLModel, table=True):
    __tablename__ = "ingest_batch"
    # The unique key is what makes retries race-safe: of two concurrent requests with one batch id, the
    # second insert waits for the first transaction and then fails, and is answered as a replay.
    __table_args__ = (UniqueConstraint("client_id", "dataset", "batch_id", name="uq_ingest_batch_client_key"),)

    #: Our own id for the batch, written into the ``batch_id`` column of every vault row it stored.
    id: str = Field(primary_key=True, max_length=36)
    client_id: str = Field(sa_column=Column(String(64), ForeignKey("oauth_client.client_id"), nullable=False))
    dataset: str = Field(max_length=64)
    #: The client's own id for the batch (its idempotency key).
    batch_id: str = Field(max_length=128)
    #: HMAC-SHA256 (pepper) of the canonical records, hex.
    content_hash: str = Field(max_length=64)
    record_count: int
    received_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
