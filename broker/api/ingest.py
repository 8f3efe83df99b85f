"""``POST /v1/ingest/{dataset}``: data providers push batches of records into the vault (DESIGN §6).

The body is read as bytes and parsed by :mod:`broker.vault.ingest` itself, because FastAPI's JSON parsing
turns 12.34 into a float, and exact fixed-point values need the number's digits. The body is capped before
it is read in full, and only once the token has been checked.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response, Security
from pydantic import BaseModel, Field

from broker.api.deps import RuntimeDep, SessionDep
from broker.api.problems import problem_response
from broker.errors import BrokerError
from broker.oauth.guard import require_client
from broker.oauth.principal import ClientPrincipal
from broker.scopes import INGEST
from broker.vault.ingest import MAX_RECORDS, BatchTooLarge, IngestService

#: 10,000 records of a few hundred bytes each fit three times over; more is refused without reading it all.
MAX_BODY_BYTES = 8 * 1024 * 1024

router = APIRouter(tags=["ingest"])


class UnsupportedMediaType(BrokerError):
    code, status, title = "unsupported-media-type", 415, "Unsupported media type"


class BatchDoc(BaseModel):
    """The request body, for the OpenAPI document (the route parses the body itself)."""

    batch_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$",
                          description="The client's idempotency key, per dataset.")
    records: list[dict[str, Any]] = Field(
        min_length=1, max_length=MAX_RECORDS,
        description="Each record: citizen_id (UUID) and the dataset's fields. Timestamps RFC 3339 with an "
                    "offset; integers as JSON integers; decimals as JSON numbers or strings with at most the "
                    "field's scale of decimal places; categories as declared.")


class IngestAccepted(BaseModel):
    batch_id: str
    dataset: str
    accepted: int = Field(description="Records stored by this batch (on a replay: by its first request).")


async def batch_body(request: Request) -> bytes:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType("send the batch as application/json")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BatchTooLarge(f"the body exceeds {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BatchTooLarge(f"the body exceeds {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


_BODY_DOC = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": BatchDoc.model_json_schema()}}}}


@router.post("/v1/ingest/{dataset}", status_code=201, response_model=IngestAccepted, openapi_extra=_BODY_DOC,
             responses={200: {"description": "A replay of a batch already stored; nothing stored again."},
                        403: {"description": "Not a provider of this dataset."},
                        404: {"description": "No such dataset."},
                        409: {"description": "The batch id was used for a different batch."},
                        413: {"description": "More than 10,000 records."},
                        422: {"description": "Invalid records, listed by index and field; nothing stored."}})
def ingest(
    # The guard comes first, so that no body is read for a request without a valid token.
    client: Annotated[ClientPrincipal, Security(require_client, scopes=[INGEST])],
    dataset: Annotated[str, Path(max_length=64)],
    body: Annotated[bytes, Depends(batch_body)],
    session: SessionDep,
    runtime: RuntimeDep,
    response: Response,
) -> Any:
    """Store a batch of records, whole or not at all. A plain ``def``: validation and the bulk insert run in
    the thread pool, off the event loop."""
    outcome = IngestService(session, runtime.policy, runtime.secrets).ingest(
        client_id=client.client_id, service=client.service, dataset_id=dataset, body=body,
        now=runtime.clock.now())
    if outcome.refusal is not None:
        # Returned, not raised: the session then commits the audit entry of the refusal (and nothing else).
        return problem_response(outcome.refusal.problem())
    receipt = outcome.receipt
    assert receipt is not None
    response.status_code = 201 if receipt.created else 200
    return IngestAccepted(batch_id=receipt.batch_id, dataset=receipt.dataset, accepted=receipt.accepted)
