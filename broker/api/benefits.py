"""``GET /v1/benefits``: per purpose and city-wide, what sharing produced and what it cost (issue 6).

Public: every figure is an aggregate, a released DP value or a declaration from the policy
(:mod:`broker.exchange.benefits` says which and why none costs budget).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from broker.api.deps import RuntimeDep, SessionDep
from broker.exchange.benefits import Benefits

router = APIRouter(tags=["public"])


@router.get("/v1/benefits")
def get_benefits(session: SessionDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Releases, contributing citizens (DP), ε used, returns paid, outcomes in both frames, costs."""
    return Benefits(session, runtime.policy).report(runtime.clock.now())
