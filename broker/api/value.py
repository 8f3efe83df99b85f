"""``GET /v1/me/value``: what the citizen of the session got back for sharing (issue 6).

Acts on the citizen of the session only, like every ``/v1/me`` route; personal data, so never cached.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from broker.api.deps import RuntimeDep
from broker.api.portal import CitizenDep, UnitOfWork
from broker.exchange.value import CitizenValue

router = APIRouter(tags=["citizen"])


@router.get("/v1/me/value")
def my_value(response: Response, runtime: RuntimeDep, principal: CitizenDep, session: UnitOfWork) -> dict[str, Any]:
    """Contributions by month, totals by kind, outcomes of the purposes contributed to, and a statement (fr, en)."""
    response.headers["Cache-Control"] = "no-store"
    return CitizenValue(session, runtime.policy).view(principal.citizen_id or "", runtime.clock.now())
