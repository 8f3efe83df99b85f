"""``create_app(settings)``: builds the whole HTTP application; nothing is built at import time."""

from __future__ import annotations

from fastapi import FastAPI

from broker import __version__, logs
from broker.api import catalog, ingest, login, me, oauth, problems, queries
from broker.api.accesslog import AccessLogMiddleware
from broker.api.csrf import CsrfMiddleware
from broker.api.portal import SESSION_COOKIE
from broker.oauth import transport
from broker.oauth.server import BrokerAuthorizationServer
from broker.runtime import Runtime
from broker.schema import check_current
from broker.settings import Settings
from broker.timeutil import Clock


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
    app.state.oauth = BrokerAuthorizationServer(runtime)
    app.include_router(catalog.router)
    app.include_router(oauth.router)
    app.include_router(login.router)
    app.include_router(me.router)
    app.include_router(ingest.router)
    app.include_router(queries.router)
    app.add_middleware(CsrfMiddleware, secrets=runtime.secrets, public_url=runtime.settings.issuer,
                       session_cookie=SESSION_COOKIE)

    app.add_middleware(AccessLogMiddleware)
    transport.install(app, runtime.settings)  # outermost: forwarded headers are read before anything else
    return app
