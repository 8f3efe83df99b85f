"""RFC 9457 problem details for every error the app can answer, framework errors included.

https://www.rfc-editor.org/rfc/rfc9457. Validation errors list the offending locations and messages but
never echo the submitted values (they may be personal data or secrets). Anything unexpected is logged by
type only and answered with a generic 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from broker.errors import PROBLEM_BASE, BrokerError
from broker.logs import event

log = logging.getLogger("broker.http")
MEDIA_TYPE = "application/problem+json"

_HTTP_CODES = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    429: ("too-many-requests", "Too many requests"),
}


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=body["status"], media_type=MEDIA_TYPE, headers=headers)


async def _broker_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BrokerError)
    return problem_response(exc.problem(), headers=getattr(exc, "headers", None))


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code, title = _HTTP_CODES.get(exc.status_code, ("http-error", "HTTP error"))
    detail = exc.detail if isinstance(exc.detail, str) else title
    body = {"type": PROBLEM_BASE + code, "title": title, "status": exc.status_code, "detail": detail}
    return problem_response(body, headers=getattr(exc, "headers", None))


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"location": ".".join(str(p) for p in err.get("loc", ())), "message": err.get("msg", "invalid")}
        for err in exc.errors()
    ]
    summary = "; ".join(f"{e['location']}: {e['message']}" for e in errors[:5])
    body = {
        "type": PROBLEM_BASE + "invalid-request",
        "title": "Invalid request",
        "status": 422,
        "detail": f"The request does not match the expected shape: {summary}",
        "errors": errors,
    }
    return problem_response(body)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    route = request.scope.get("route")
    event(log, "unhandled_error", logging.ERROR, error=type(exc).__name__,
          route=getattr(route, "path", "unknown"), method=request.method)
    body = {
        "type": PROBLEM_BASE + "internal-error",
        "title": "Internal error",
        "status": 500,
        "detail": "The broker could not complete the request; nothing was changed.",
    }
    return problem_response(body)


def install(app: FastAPI) -> None:
    app.add_exception_handler(BrokerError, _broker_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
