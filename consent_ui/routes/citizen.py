"""The citizen's pages: dashboard, purposes, receipts, accesses, value, my data (the pages of a guardian's
wards are in :mod:`consent_ui.routes.wards`).

Pages call :class:`CitizenSelfService`, :class:`CitizenAccesses` and :class:`SelfErasure`, the same services
as ``/v1/me``. Forms post and answer 303 to the page they came from (post/redirect/get), so a reload never
repeats a consent change and the pages work without JavaScript.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from broker.api.deps import RuntimeDep
from broker.api.portal import clear_session_cookie, client_address, login_config
from broker.audit.accesses import CitizenAccesses
from broker.audit.rfc9162 import verify_inclusion
from broker.consent.states import ConsentState, ConsentStatus, NotCounting
from broker.db import session_scope
from broker.errors import BrokerError
from broker.exchange.value import CitizenValue
from broker.identity.selfservice import CitizenSelfService, PrivacyCapOutOfRange, SelfErasure, SignedRecord
from consent_ui import views
from consent_ui.web import Visit, back, to_login

router = APIRouter()
PurposeId = Annotated[str, Path(max_length=64)]
ACCESS_PAGE = 50
# Consent rules the ledger enforces, and the message key the purposes page shows for each.
REFUSALS = {"explicit-confirmation-required": "explicit", "guardian-required": "guardian",
            "age-unknown": "guardian"}


def _citizen_visit(request: Request, runtime: RuntimeDep) -> Visit | Response:
    visit = Visit.of(request, runtime)
    if visit.principal is None:
        return to_login(request)
    if not visit.is_citizen:
        return RedirectResponse("/audit" if visit.is_auditor else "/city", status_code=303)
    return visit


def citizen_page(request: Request, runtime: RuntimeDep,
                  build: Callable[[Visit, CitizenSelfService], Response]) -> Response:
    visit = _citizen_visit(request, runtime)
    if isinstance(visit, Response):
        return visit
    with session_scope(runtime.engine) as session:
        service = CitizenSelfService(session, runtime.policy, runtime.secrets, runtime.clock,
                                     visit.principal.citizen_id or "" if visit.principal else "")
        return build(visit, service)


@router.get("/")
def home(request: Request, runtime: RuntimeDep) -> Response:
    visit = Visit.of(request, runtime)
    if visit.principal is None:
        return RedirectResponse("/city", status_code=303)
    if visit.is_auditor:
        return RedirectResponse("/audit", status_code=303)
    # Read before the unit of work opens: the access list folds the log in its own transaction, which on
    # SQLite would wait for the write lock an open unit of work holds.
    recent = _recent_accesses(visit, 5) if visit.is_citizen else None

    def page(visit: Visit, service: CitizenSelfService) -> Response:
        statuses = service.consents()
        cards = views.purpose_cards(runtime.policy, statuses)
        earned = CitizenValue(service.session, runtime.policy).view(service.citizen.id, runtime.clock.now())
        return visit.render("dashboard.html", profile=service.profile(), earned=earned,
                            active=[c for c in cards if c.status.counts and c.status.takes_consent],
                            to_answer=[c for c in cards if c.needs_answer],
                            promised=views.promised_value(cards), accesses=recent,
                            wards=[views.WardSummary.of(w) for w in service.wards()])

    return citizen_page(request, runtime, page)


@router.get("/purposes")
def purposes(request: Request, runtime: RuntimeDep, done: Annotated[str | None, Query()] = None,
             error: Annotated[str | None, Query()] = None) -> Response:
    def page(visit: Visit, service: CitizenSelfService) -> Response:
        return visit.render("purposes.html", cards=views.purpose_cards(runtime.policy, service.consents()),
                            done=done, error=error)

    return citizen_page(request, runtime, page)


@router.post("/purposes/{purpose_id}")
def answer(request: Request, purpose_id: PurposeId, runtime: RuntimeDep,
           state: Annotated[str, Form(max_length=16)],
           explicit: Annotated[str | None, Form(max_length=8)] = None) -> Response:
    def act(visit: Visit, service: CitizenSelfService) -> Response:
        if state not in ("given", "refused", "withdrawn", "paused"):
            return back("/purposes", error="invalid")
        try:
            service.set_consent(purpose_id, state, explicit=explicit == "yes", language=visit.lang,
                                method="portal")
        except BrokerError as refused:
            service.session.rollback()
            code = REFUSALS.get(str(refused.extra.get("rule", "")), "refused")
            return RedirectResponse(f"/purposes?error={code}#purpose-{purpose_id}", status_code=303)
        service.session.commit()
        return RedirectResponse(f"/purposes?done={state}#purpose-{purpose_id}", status_code=303)

    return citizen_page(request, runtime, act)


@router.get("/receipts")
def receipts(request: Request, runtime: RuntimeDep) -> Response:
    def page(visit: Visit, service: CitizenSelfService) -> Response:
        records = list(reversed(service.ledger.history(service.citizen)))
        return visit.render("receipts.html", records=records,
                            titles={p.id: p.title for p in runtime.policy.purposes})

    return citizen_page(request, runtime, page)


@router.get("/receipts/{record_id}")
def receipt(request: Request, record_id: Annotated[str, Path(max_length=64)], runtime: RuntimeDep) -> Response:
    def page(visit: Visit, service: CitizenSelfService) -> Response:
        signed = service.receipt(record_id)  # NotFound for another citizen's record, answered like any 404
        service.session.commit()
        return visit.render("receipt.html", record=signed.record, jws=signed.receipt,
                            payload=service.ledger.receipt(signed.record),
                            purpose=runtime.policy.purpose(signed.record.purpose_id))

    return citizen_page(request, runtime, page)


@router.get("/receipts/{record_id}/receipt.jws")
def receipt_download(request: Request, record_id: Annotated[str, Path(max_length=64)],
                     runtime: RuntimeDep) -> Response:
    def download(_visit: Visit, service: CitizenSelfService) -> Response:
        signed = service.receipt(record_id)
        service.session.commit()
        return receipt_attachment(signed)

    return citizen_page(request, runtime, download)


def receipt_attachment(signed: SignedRecord) -> Response:
    """The compact JWS as a file to keep: a citizen's own receipt or a ward's."""
    return Response(signed.receipt, media_type="application/jose", headers={
        "Content-Disposition": f'attachment; filename="consent-receipt-{signed.record.id}.jws"',
        "Cache-Control": "no-store"})


def _recent_accesses(visit: Visit, limit: int, cursor: int | None = None) -> dict[str, Any]:
    runtime = visit.runtime
    found = CitizenAccesses(runtime.engine, runtime.policy, runtime.secrets, runtime.clock, runtime.reader).list(
        visit.principal.citizen_id or "" if visit.principal else "", cursor, limit)
    root = bytes.fromhex(found.checkpoint.root_hash)
    rows = []
    for access in found.accesses:
        details = access.entry.get("details") or {}
        verified = None if access.inclusion_path is None else verify_inclusion(
            access.served.index, found.checkpoint.tree_size, access.served.leaf_hash, access.inclusion_path, root)
        actor = str(access.entry.get("actor", ""))
        rows.append({"index": access.served.index, "at": access.entry.get("at"),
                     "purpose": runtime.policy.purpose(access.entry.get("purpose", "")),
                     "purpose_id": access.entry.get("purpose"), "legal_basis": access.legal_basis,
                     "service": _service_name(runtime, details.get("service") or actor.removeprefix("service:")),
                     "dataset": access.entry.get("dataset"), "statistic": details.get("statistic"),
                     "epsilon": details.get("epsilon_charged", access.entry.get("epsilon")),
                     "verified": verified})
    return {"rows": rows, "checkpoint": found.checkpoint, "next_cursor": found.next_cursor}


def _service_name(runtime: RuntimeDep, service_id: str) -> str:
    service = runtime.policy.service(service_id)
    return service.name if service is not None else service_id


@router.get("/accesses")
def accesses(request: Request, runtime: RuntimeDep,
             cursor: Annotated[int | None, Query(ge=0)] = None) -> Response:
    visit = _citizen_visit(request, runtime)
    if isinstance(visit, Response):
        return visit
    found = _recent_accesses(visit, ACCESS_PAGE, cursor)
    return visit.render("accesses.html", found=found,
                        chart=views.monthly([r["at"] for r in found["rows"]], visit.lang))


@router.get("/value")
def value(request: Request, runtime: RuntimeDep) -> Response:
    def page(visit: Visit, service: CitizenSelfService) -> Response:
        cards = views.purpose_cards(runtime.policy, service.consents())
        ledger = CitizenValue(service.session, runtime.policy).view(service.citizen.id, runtime.clock.now())
        return visit.render("value.html", promised=views.promised_value(cards), ledger=ledger,
                            earned_chart=views.earned_by_month(ledger, visit.lang),
                            releases_chart=views.releases_by_month(ledger, visit.lang))

    return citizen_page(request, runtime, page)


@router.get("/my-data")
def my_data(request: Request, runtime: RuntimeDep, done: Annotated[str | None, Query()] = None,
            error: Annotated[str | None, Query()] = None) -> Response:
    def page(visit: Visit, service: CitizenSelfService) -> Response:
        return visit.render("mydata.html", profile=service.profile(), cap_bounds=service.privacy_cap_bounds(),
                            done=done, error=error)

    return citizen_page(request, runtime, page)


@router.post("/my-data/privacy-cap")
def privacy_cap(request: Request, runtime: RuntimeDep, privacy_cap: Annotated[str, Form(max_length=32)] = "",
                action: Annotated[str, Form(max_length=16)] = "set") -> Response:
    """The personal cap form: a number within the bounds, or back to the city's default."""

    def act(_visit: Visit, service: CitizenSelfService) -> Response:
        try:
            # The French keyboard's decimal comma is accepted as well as the point.
            cap = None if action == "default" else float(privacy_cap.strip().replace(",", "."))
            service.set_privacy_cap(cap)
        except (ValueError, PrivacyCapOutOfRange):
            service.session.rollback()
            return back("/my-data", error="cap")
        service.session.commit()
        return RedirectResponse("/my-data?done=cap#cap-title", status_code=303)

    return citizen_page(request, runtime, act)


@router.post("/my-data/pause")
def pause_all(request: Request, runtime: RuntimeDep) -> Response:
    """Pause every consent that counts: one click stops all use of my data, each pause with its receipt."""

    def act(_visit: Visit, service: CitizenSelfService) -> Response:
        givens: list[ConsentStatus] = [s for s in service.consents() if s.state is ConsentState.given
                                       and s.reason in (None, NotCounting.purpose_not_active,
                                                        NotCounting.restricted)]
        for status in givens:
            service.set_consent(status.purpose_id, ConsentState.paused.value, explicit=False, language=None,
                                method="portal")
        service.session.commit()
        return back("/my-data", done="paused")

    return citizen_page(request, runtime, act)


@router.post("/my-data/erase")
def erase(request: Request, runtime: RuntimeDep, password: Annotated[str, Form(max_length=1024)] = "",
          confirm: Annotated[str | None, Form(max_length=8)] = None) -> Response:
    visit = Visit.of(request, runtime)
    if visit.principal is None:
        return to_login(request)
    if not visit.is_citizen:
        return RedirectResponse("/", status_code=303)
    if confirm != "yes":
        return back("/my-data", error="confirm")
    try:
        SelfErasure(runtime.engine, runtime.policy, runtime.secrets, runtime.clock, login_config(runtime)).erase(
            visit.principal, password or None, address=client_address(request))
    except BrokerError:
        return back("/my-data", error="password")
    response = RedirectResponse("/city?erased=1", status_code=303)
    clear_session_cookie(response, request)
    return response
