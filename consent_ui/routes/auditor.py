"""The auditors' view: the access log with filters and pages, one entry with its inclusion proof checked,
the checkpoint's status, exports, and the privacy budgets per service.

Proofs are checked here the way an outside auditor would: the checkpoint's signature against the log's
public keys, the leaf hash recomputed from the entry's canonical JSON, and the RFC 9162 path folded up to the
checkpoint's root. The page says which of the three held.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from broker.api.deps import RuntimeDep
from broker.audit.checkpoints import read_checkpoint
from broker.audit.entries import EntryFilter
from broker.audit.rfc9162 import leaf_hash, verify_inclusion
from broker.audit.service import AuditLog
from broker.db import session_scope
from broker.errors import BrokerError
from broker.privacy.budget import BudgetLedger
from broker.runtime import Runtime
from consent_ui.web import Visit, to_login

router = APIRouter()
PAGE = 25
FILTERS = ("action", "purpose", "dataset", "decision", "actor")


def _log(runtime: Runtime) -> AuditLog:
    return AuditLog(runtime.engine, runtime.secrets, runtime.clock, runtime.reader)


def _auditor(request: Request, runtime: Runtime) -> Visit | Response:
    visit = Visit.of(request, runtime)
    if visit.principal is None:
        return to_login(request)
    if not visit.is_auditor:
        return visit.render("forbidden.html", status_code=403)
    return visit


def _checkpoint_status(log: AuditLog) -> dict[str, Any]:
    checkpoint = log.checkpoint()
    try:
        read_checkpoint(checkpoint.jws, log.keys())
        signature_ok = True
    except BrokerError:
        signature_ok = False
    return {"checkpoint": checkpoint, "signature_ok": signature_ok}


@router.get("/audit")
def log_browser(request: Request, runtime: RuntimeDep,
                action: Annotated[str | None, Query(max_length=64)] = None,
                purpose: Annotated[str | None, Query(max_length=64)] = None,
                dataset: Annotated[str | None, Query(max_length=64)] = None,
                decision: Annotated[str | None, Query(max_length=8)] = None,
                actor: Annotated[str | None, Query(max_length=128)] = None,
                since: Annotated[str | None, Query(max_length=32)] = None,
                cursor: Annotated[int | None, Query(ge=0)] = None) -> Response:
    visit = _auditor(request, runtime)
    if isinstance(visit, Response):
        return visit
    chosen = {k: v for k, v in {"action": action, "purpose": purpose, "dataset": dataset,
                                "decision": decision if decision in ("allow", "deny") else None,
                                "actor": actor}.items() if v}
    since_at = None
    if since:
        try:
            since_at = datetime.fromisoformat(since)
            chosen["since"] = since
        except ValueError:
            since_at = None
    log = _log(runtime)
    page = log.page(EntryFilter(since=since_at, **{k: chosen.get(k) for k in FILTERS}), cursor, PAGE)
    query = urlencode(chosen)
    return visit.render("audit_log.html", entries=[(e.index, e.leaf_hash.hex(), e.entry()) for e in page.entries],
                        filters=chosen, query=query, next_cursor=page.next_cursor, first_page=cursor is None,
                        status=_checkpoint_status(log))


@router.get("/audit/entries/{index}")
def entry_detail(request: Request, index: Annotated[int, Path(ge=0)], runtime: RuntimeDep) -> Response:
    visit = _auditor(request, runtime)
    if isinstance(visit, Response):
        return visit
    log = _log(runtime)
    found = log.page(EntryFilter(), index - 1 if index > 0 else None, 1).entries
    if not found or found[0].index != index:
        return visit.render("not_found.html", status_code=404)
    served = found[0]
    status = _checkpoint_status(log)
    checkpoint = status["checkpoint"]
    proof = None
    leaf_ok = leaf_hash(served.body.encode()) == served.leaf_hash
    path_ok = False
    if index < checkpoint.tree_size:
        proof = log.inclusion(index, checkpoint.tree_size)
        path_ok = verify_inclusion(index, checkpoint.tree_size, served.leaf_hash, proof.inclusion_path,
                                   checkpoint.root)
    return visit.render("audit_entry.html", index=index, entry=served.entry(), body=served.body,
                        leaf=served.leaf_hash.hex(), proof=proof, leaf_ok=leaf_ok, path_ok=path_ok,
                        verified=leaf_ok and path_ok and status["signature_ok"], status=status)


@router.get("/audit/budgets")
def budgets(request: Request, runtime: RuntimeDep) -> Response:
    visit = _auditor(request, runtime)
    if isinstance(visit, Response):
        return visit
    policy, now = runtime.policy, runtime.clock.now()
    rows = []
    with session_scope(runtime.reader) as session:
        ledger = BudgetLedger(session, policy)
        for service in policy.services:
            for purpose_id in service.purposes:
                purpose = policy.purpose(purpose_id)
                if purpose is None:
                    continue
                for dataset_id in purpose.dataset_ids:
                    accounts = ledger.accounts(service.id, purpose, dataset_id, now)
                    rows.append({"service": service, "purpose": purpose, "dataset": dataset_id,
                                 "period": accounts.service.period,
                                 "service_account": accounts.service.as_json(),
                                 "shared_account": accounts.shared.as_json()})
    return visit.render("audit_budgets.html", rows=rows)


@router.get("/audit/checkpoint")
def checkpoint_page(request: Request, runtime: RuntimeDep) -> Response:
    visit = Visit.of(request, runtime)  # the checkpoint is public: anyone may keep a copy
    return visit.render("audit_checkpoint.html", status=_checkpoint_status(_log(runtime)))
