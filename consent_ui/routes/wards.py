"""A guardian's pages for the minors in their care: each ward's purposes, with the same two answers.

The page of a ward is reached by the guardianship link's id, looked up among the session citizen's own links
in force (:meth:`CitizenSelfService.ward`): any other id is a plain 404. Forms post and redirect like the
citizen's own purposes page, so they work without JavaScript.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from broker.api.deps import RuntimeDep
from broker.errors import BrokerError, NotFound
from broker.identity.selfservice import CitizenSelfService
from consent_ui import views
from consent_ui.routes.citizen import REFUSALS, PurposeId, citizen_page
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
                            done=f"ward-{done}" if done else None, error=error)

    return citizen_page(request, runtime, page)


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
