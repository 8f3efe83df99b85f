"""Pages for everyone: the city's page (purposes, and what the city publishes) and the language switch."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from broker.api.deps import RuntimeDep
from broker.api.login import safe_next
from broker.api.portal import is_https
from broker.db import session_scope
from broker.exchange.benefits import Benefits
from broker.exchange.open_data import OpenData
from consent_ui import i18n
from consent_ui.web import Visit

router = APIRouter()
OPEN_DATA_SHOWN = 20  # the oldest published releases; the full set is at /v1/open-data


@router.get("/city")
def city(request: Request, runtime: RuntimeDep, erased: Annotated[str | None, Query(max_length=2)] = None
         ) -> Response:
    visit = Visit.of(request, runtime)
    with session_scope(runtime.reader) as session:
        report = Benefits(session, runtime.policy).report(runtime.clock.now())
        releases = OpenData(session, runtime.policy).releases(purpose_id=None, offset=0, limit=OPEN_DATA_SHOWN)
    return visit.render("city.html", purposes=runtime.policy.purposes, erased=bool(erased),
                        benefits=report["purposes"], releases=[r.as_json() for r in releases])


@router.get("/language")
def switch_language(request: Request, lang: Annotated[str, Query(max_length=8)],
                    next: Annotated[str | None, Query(max_length=512)] = None) -> Response:
    """A plain link or GET form: choosing a language is a preference, not a state change needing CSRF."""
    target = safe_next(next)
    if target.startswith("/login") and lang in i18n.LANGUAGES:
        # The login form takes its language from its own query (it is served before any account is known).
        target = f"{target}{'&' if '?' in target else '?'}lang={lang}"
    response = RedirectResponse(target, status_code=303)
    if lang in i18n.LANGUAGES:
        response.set_cookie(i18n.LANG_COOKIE, lang, max_age=365 * 24 * 3600, path="/", samesite="lax",
                            secure=is_https(request))
    return response
