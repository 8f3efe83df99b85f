"""The access log's API (DESIGN §6): the checkpoint for anyone, entries and proofs for auditors.

``GET /v1/audit/checkpoint`` and ``GET /v1/audit/keys`` are public, so that citizens, journalists and the
open-data portal can keep copies outside the broker's control. Entries and proofs need a portal session with
the ``auditor`` role; anyone else logged in gets 403, and the refusal is itself logged. Hashes are hex.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from broker.api.deps import RuntimeDep
from broker.api.portal import PrincipalDep
from broker.audit.checkpoints import Checkpoint
from broker.audit.entries import EntryFilter, csv_rows, jsonl
from broker.audit.refusals import account_refused
from broker.audit.service import MAX_PAGE, AuditLog
from broker.errors import Forbidden
from broker.identity.accounts import Role
from broker.identity.sessions import Principal
from broker.oauth.guard import route_of
from broker.runtime import Runtime

router = APIRouter(prefix="/v1/audit", tags=["audit"])

JSONL_TYPE = "application/jsonl"
CSV_TYPE = "text/csv; charset=utf-8"


def audit_log(runtime: RuntimeDep) -> AuditLog:
    return AuditLog(runtime.engine, runtime.secrets, runtime.clock, runtime.reader)


def current_auditor(request: Request, runtime: RuntimeDep, principal: PrincipalDep) -> Principal:
    if principal.role != Role.auditor.value:
        _refused(runtime, principal, request)
        raise Forbidden("The access log is for auditors.")
    return principal


def _refused(runtime: Runtime, principal: Principal, request: Request) -> None:
    # In a transaction of its own: the refusal's entry commits although the request fails.
    account_refused(runtime.engine, runtime.clock.now(), principal.account_id, resource=route_of(request),
                    reason=f"role {principal.role} is not auditor")


LogDep = Annotated[AuditLog, Depends(audit_log)]
AuditorDep = Annotated[Principal, Depends(current_auditor)]


class CheckpointOut(BaseModel):
    checkpoint: str = Field(description="Compact JWS (ES256) of {tree_size, root_hash, timestamp}; keep it.")
    tree_size: int
    root_hash: str
    timestamp: str
    kid: str

    @classmethod
    def of(cls, checkpoint: Checkpoint) -> CheckpointOut:
        return cls(checkpoint=checkpoint.jws, tree_size=checkpoint.tree_size, root_hash=checkpoint.root_hash,
                   timestamp=checkpoint.timestamp, kid=checkpoint.kid)


class InclusionOut(BaseModel):
    leaf_index: int
    tree_size: int
    leaf_hash: str
    inclusion_path: list[str] = Field(description="RFC 9162 §2.1.3 PATH, hex, from the leaf's sibling up.")
    checkpoint: str | None = Field(description="The signed checkpoint of this tree size, if one was signed.")


class ConsistencyOut(BaseModel):
    tree_size_1: int
    tree_size_2: int
    consistency_path: list[str] = Field(description="RFC 9162 §2.1.4 PROOF, hex.")
    checkpoint_1: str | None
    checkpoint_2: str | None


@router.get("/checkpoint")
def checkpoint(log: LogDep, response: Response) -> CheckpointOut:
    response.headers["Cache-Control"] = "no-cache"
    return CheckpointOut.of(log.checkpoint())


@router.get("/keys")
def keys(log: LogDep) -> dict[str, Any]:
    """Every key that ever signed a checkpoint (public halves), retired ones included."""
    return log.keys()


@router.get("/proofs/inclusion")
def inclusion(_auditor: AuditorDep, log: LogDep, index: Annotated[int, Query(ge=0)],
              size: Annotated[int | None, Query(ge=1, description="Default: the newest checkpoint's.")] = None
              ) -> InclusionOut:
    proof = log.inclusion(index, size)
    return InclusionOut(leaf_index=proof.leaf_index, tree_size=proof.tree_size, leaf_hash=proof.leaf_hash.hex(),
                        inclusion_path=[h.hex() for h in proof.inclusion_path],
                        checkpoint=proof.checkpoint.jws if proof.checkpoint else None)


@router.get("/proofs/consistency")
def consistency(_auditor: AuditorDep, log: LogDep, first: Annotated[int, Query(alias="from", ge=0)],
                second: Annotated[int, Query(alias="to", ge=0)]) -> ConsistencyOut:
    proof = log.consistency(first, second)
    one, two = proof.checkpoints
    return ConsistencyOut(tree_size_1=proof.tree_size_1, tree_size_2=proof.tree_size_2,
                          consistency_path=[h.hex() for h in proof.consistency_path],
                          checkpoint_1=one.jws if one else None, checkpoint_2=two.jws if two else None)


def _format(request: Request, asked: str | None) -> str:
    if asked:
        return asked
    accept = request.headers.get("accept", "")
    if "jsonl" in accept or "ndjson" in accept:
        return "jsonl"
    return "csv" if "text/csv" in accept else "json"


@router.get("/entries", response_model=None, responses={200: {"content": {
    "application/json": {}, JSONL_TYPE: {}, "text/csv": {}},
    "description": "JSON: {entries: [{index, leaf_hash, entry}], next_cursor}; JSON Lines or CSV: every "
                   "matching entry (no paging)."}})
def entries(request: Request, _auditor: AuditorDep, log: LogDep,
            since: datetime | None = None, until: datetime | None = None,
            actor: Annotated[str | None, Query(max_length=128)] = None,
            action: Annotated[str | None, Query(max_length=64)] = None,
            purpose: Annotated[str | None, Query(max_length=64)] = None,
            dataset: Annotated[str | None, Query(max_length=64)] = None,
            decision: Literal["allow", "deny"] | None = None,
            subject: Annotated[str | None, Query(max_length=64)] = None,
            cursor: Annotated[int | None, Query(ge=0, description="next_cursor of the previous page")] = None,
            limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
            format: Literal["json", "jsonl", "csv"] | None = None) -> Response:
    where = EntryFilter(since=since, until=until, actor=actor, action=action, purpose=purpose, dataset=dataset,
                        decision=decision, subject=subject)
    headers = {"Cache-Control": "no-store"}
    chosen = _format(request, format)
    if chosen == "jsonl":
        headers["Content-Disposition"] = 'attachment; filename="audit-log.jsonl"'
        return StreamingResponse(jsonl(log.export(where)), media_type=JSONL_TYPE, headers=headers)
    if chosen == "csv":
        headers["Content-Disposition"] = 'attachment; filename="audit-log.csv"'
        return StreamingResponse(csv_rows(log.export(where)), media_type=CSV_TYPE, headers=headers)
    page = log.page(where, cursor, limit)
    # Each entry verbatim, as stored and hashed: re-serialising could reformat its numbers.
    body = (f'{{"entries":[{",".join(e.line() for e in page.entries)}],'
            f'"next_cursor":{"null" if page.next_cursor is None else page.next_cursor}}}')
    return Response(body, media_type="application/json", headers=headers)
