"""``create_app(settings)``: builds the whole HTTP application; nothing is built at import time."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

from broker import __version__, logs
from broker.api import catalog, problems
from broker.runtime import Runtime
from broker.schema import check_current
from broker.settings import Settings
from broker.timeutil import Clock

log = logging.getLogger("broker.http")


def create_app(settings: Settings | None = None, *, clock: Clock | None = None,
               runtime: Runtime | None = None) -> FastAPI:
    """The broker's ASGI app. Refuses to build on an invalid policy or an out-of-date schema."""
    runtime = runtime or Runtime.from_settings(settings or Settings(), clock=clock)
    logs.configure(runtime.settings.log_level)
    check_current(runtime.engine)

    app = FastAPI(title="Consent Broker", version=__version__,
                  description="Privacy-preserving data-sharing consent broker for cities.")
    app.state.runtime = runtime
    problems.install(app)
    app.include_router(catalog.router)

    @app.middleware("http")
    async def access_log(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        logs.event(log, "request", method=request.method, route=getattr(route, "path", "unmatched"),
                   status=response.status_code, ms=round((time.perf_counter() - started) * 1000, 1))
        return response

    return app
