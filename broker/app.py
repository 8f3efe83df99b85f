"""``create_app(settings)``: builds the whole HTTP application; nothing is built at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from broker import __version__, logs
from broker.api import (
    audit,
    benefits,
    catalog,
    ingest,
    login,
    me,
    oauth,
    open_data,
    outcomes,
    problems,
    queries,
    value,
    wards,
)
from broker.api.accesslog import AccessLogMiddleware
from broker.api.csrf import CsrfMiddleware
from broker.api.portal import SESSION_COOKIE
from broker.audit import actions, record
from broker.audit.integrator import BackgroundIntegrator
from broker.db import session_scope
from broker.oauth import transport
from broker.oauth.server import BrokerAuthorizationServer
from broker.runtime import Runtime
from broker.schema import check_current
from broker.settings import Settings
from broker.timeutil import Clock
from consent_ui import build_router as portal_router
from consent_ui.csp import ContentSecurityPolicy
from consent_ui.static import STATIC_DIR


def create_app(settings: Settings | None = None, *, clock: Clock | None = None,
               runtime: Runtime | None = None, audit_integrator: bool = True) -> FastAPI:
    """The broker's ASGI app. Refuses to build on an invalid policy or an out-of-date schema.

    ``audit_integrator``: run the access log's integrator in this worker (a task folding new entries into the
    Merkle tree and signing checkpoints; safe in every worker, they take turns).
    """
    runtime = runtime or Runtime.from_settings(settings or Settings(), clock=clock)
    logs.configure(runtime.settings.log_level)
    check_current(runtime.engine)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Which policy this worker serves under goes into the log before it serves anything.
        with session_scope(runtime.engine) as session:
            record(session, actions.policy_loaded(runtime.policy, "start"), runtime.clock.now())
        integrator = BackgroundIntegrator(runtime.engine, runtime.secrets, runtime.clock, reader=runtime.reader)
        if audit_integrator:
            integrator.start()
        try:
            yield
        finally:
            await integrator.stop()

    app = FastAPI(title="Consent Broker", version=__version__, lifespan=lifespan,
                  description="Privacy-preserving data-sharing consent broker for cities.")
    app.state.runtime = runtime
    problems.install(app)
    app.state.oauth = BrokerAuthorizationServer(runtime)
    app.include_router(catalog.router)
    app.include_router(oauth.router)
    app.include_router(login.router)
    app.include_router(me.router)
    app.include_router(wards.router)
    app.include_router(audit.router)
    app.include_router(ingest.router)
    app.include_router(queries.router)
    app.include_router(portal_router())  # the citizens' portal and the auditors' view; `/` is its start page
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for exchange_router in (value.router, outcomes.router, benefits.router, open_data.router):
        app.include_router(exchange_router)
    app.add_middleware(CsrfMiddleware, secrets=runtime.secrets, public_url=runtime.settings.issuer,
                       session_cookie=SESSION_COOKIE)

    app.add_middleware(ContentSecurityPolicy)
    app.add_middleware(AccessLogMiddleware)
    transport.install(app, runtime.settings)  # outermost: forwarded headers are read before anything else
    return app
