"""A guardian's pages for the minors in their care: each ward's purposes, with the same two answers, and the
ward's consent records with their signed receipts.

The page of a ward is reached by the guardianship link's id, looked up among the session citizen's own links
in force (:meth:`CitizenSelfService.ward`): any other id is a plain 404. Forms post and redirect like the
citizen's own purposes page, so they work without JavaScript.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from broker.api.deps import RuntimeDep
from broker.api.me import RecordId
from broker.errors import BrokerError, NotFound
from broker.identity.selfservice import CitizenSelfService
from consent_ui import views
from consent_ui.routes.citizen import REFUSALS, PurposeId, citizen_page, receipt_attachment
from consent_ui.web import Visit

router = APIRouter()
WardRef = Annotated[str, Path(max_length=36)]
# The ledger's refusals a guardian can meet, and the message key the ward's page shows for each.
WARD_REFUSALS = {**REFUSALS, "guardian-not-applicable": "alone"}


@router.get("/wards/{ward_ref}")
def ward(request: Request, ward_ref: WardRef, runtime: RuntimeDep, done: Annotated[str | None, Query()] = None,
         error: Annotated[str | None, Query()] = None) -> Response:
    def page(visit: Visit, service: CitizenSelfService) -> Response:
        try:
            found = service.ward(ward_ref)
        except NotFound:
            return visit.render("not_found.html", status_code=404)
        return visit.render("ward.html", ward=found, cards=views.purpose_cards(runtime.policy, found.consents),
                            records=service.ward_records(ward_ref), me=service.citizen.pseudonym,
                            titles={p.id: p.title for p in runtime.policy.purposes},
                            done=f"ward-{done}" if done else None, error=error)

    return citizen_page(request, runtime, page)


@router.get("/wards/{ward_ref}/receipts/{record_id}")
def ward_receipt(request: Request, ward_ref: WardRef, record_id: RecordId, runtime: RuntimeDep) -> Response:
    """The readable receipt of one of the ward's records, the citizen's own receipt page seen from the ward."""
    def page(visit: Visit, service: CitizenSelfService) -> Response:
        try:
            signed = service.ward_receipt(ward_ref, record_id)  # first: a refusal is audited
            found = service.ward(ward_ref)
        except NotFound:
            return visit.render("not_found.html", status_code=404)
        service.session.commit()
        return visit.render("ward_receipt.html", ward=found, record=signed.record, jws=signed.receipt,
                            payload=service.ledger.receipt(signed.record),
                            purpose=runtime.policy.purpose(signed.record.purpose_id))

    return citizen_page(request, runtime, page)


@router.get("/wards/{ward_ref}/receipts/{record_id}/receipt.jws")
def ward_receipt_download(request: Request, ward_ref: WardRef, record_id: RecordId, runtime: RuntimeDep) -> Response:
    def download(visit: Visit, service: CitizenSelfService) -> Response:
        try:
            signed = service.ward_receipt(ward_ref, record_id)
        except NotFound:
            return visit.render("not_found.html", status_code=404)
        service.session.commit()
        return receipt_attachment(signed)

    return citizen_page(request, runtime, download)


@router.post("/wards/{ward_ref}/purposes/{purpose_id}")
def answer_for_ward(request: Request, ward_ref: WardRef, purpose_id: PurposeId, runtime: RuntimeDep,
                    state: Annotated[str, Form(max_length=16)],
                    explicit: Annotated[str | None, Form(max_length=8)] = None) -> Response:
    here = f"/wards/{ward_ref}"

    def act(visit: Visit, service: CitizenSelfService) -> Response:
        if state not in ("given", "refused", "withdrawn", "paused"):
            return RedirectResponse(f"{here}?error=invalid", status_code=303)
        try:
            service.set_ward_consent(ward_ref, purpose_id, state, explicit=explicit == "yes", language=visit.lang,
                                     method="portal")
        except NotFound:
            service.session.rollback()
            return visit.render("not_found.html", status_code=404)
        except BrokerError as refused:
            service.session.rollback()
            code = WARD_REFUSALS.get(str(refused.extra.get("rule", "")), "refused")
            return RedirectResponse(f"{here}?error={code}#purpose-{purpose_id}", status_code=303)
        service.session.commit()
        return RedirectResponse(f"{here}?done={state}#purpose-{purpose_id}", status_code=303)

    return citizen_page(request, runtime, act)
