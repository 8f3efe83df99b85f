"""``GET /v1/open-data``: the DP releases of purposes that publish them, as JSON or CSV (issue 6).

Publishing is post-processing of released values and costs no budget (:mod:`broker.exchange.open_data`).
CSV is chosen with ``?format=csv`` or ``Accept: text/csv``: one row per released cell.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from broker.api.deps import RuntimeDep, SessionDep
from broker.exchange.open_data import MAX_PAGE, OpenData, to_csv

router = APIRouter(tags=["public"])
CSV = "text/csv"


@router.get("/v1/open-data", responses={200: {"content": {CSV: {}}}})
def get_open_data(request: Request, session: SessionDep, runtime: RuntimeDep,
                  purpose: Annotated[str | None, Query(max_length=64)] = None,
                  offset: Annotated[int, Query(ge=0)] = 0,
                  limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = MAX_PAGE,
                  fmt: Annotated[Literal["json", "csv"] | None, Query(alias="format")] = None) -> Any:
    """Published releases with ε, 95% interval and method, oldest first."""
    releases = OpenData(session, runtime.policy).releases(purpose_id=purpose, offset=offset, limit=limit)
    wants_csv = fmt == "csv" or (fmt is None and CSV in request.headers.get("accept", ""))
    if wants_csv:
        return Response(to_csv(releases), media_type=f"{CSV}; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="open-data.csv"'})
    return {"releases": [r.as_json() for r in releases], "offset": offset, "limit": limit,
            "next_offset": offset + len(releases) if len(releases) == limit else None}
