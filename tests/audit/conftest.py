"""Fixtures for the access log tests: a log to append to, people with accounts, registered OAuth clients."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc.jwk import ECKey
from pydantic import SecretStr
from sqlalchemy import Engine, text

from broker.app import create_app
from broker.audit import AuditEvent, record
from broker.audit.entries import EntryFilter, stream
from broker.audit.integrator import integrate
from broker.db import session_scope
from broker.keys import KeyRing, Secrets
from broker.oauth.registration import ClientRegistry
from broker.runtime import Runtime
from broker.timeutil import FixedClock
from tests.oauth.support import ISSUER, LOOPBACK
from tests.support.oidc_provider import OidcTestProvider

Append = Callable[..., list[int]]


def event(i: int, **fields: Any) -> AuditEvent:
    return AuditEvent(actor="system", action="test.event", details={"i": i, "share": 0.25 + i}, **fields)


@pytest.fixture
def append(engine: Engine, clock: FixedClock) -> Append:
    """Append ``n`` test events, one transaction each; returns their indexes."""

    def go(n: int, *, per_transaction: int = 1, tick: float = 0.001) -> list[int]:
        indexes: list[int] = []
        for start in range(0, n, per_transaction):
            with session_scope(engine) as session:
                for i in range(start, min(n, start + per_transaction)):
                    indexes.append(record(session, event(i), clock.now()))
                    clock.advance(seconds=tick)
        return indexes

    return go


@pytest.fixture
def integrated(engine: Engine, secrets: Secrets, clock: FixedClock, keyring: KeyRing) -> Callable[[], Any]:
    return lambda: integrate(engine, secrets, clock)


def entries_of(engine: Engine, **where: Any) -> list[dict[str, Any]]:
    return [served.entry() for served in stream(engine, EntryFilter(**where))]


def export_lines(engine: Engine) -> list[str]:
    return [served.line() + "\n" for served in stream(engine, EntryFilter())]


def execute(engine: Engine, sql: str, **params: Any) -> None:
    with engine.begin() as connection:
        connection.execute(text(sql), params)


#: The access log's append-only tables (tools/regen_initial_migration.py installs their triggers).
APPEND_ONLY_TABLES = ("audit_entry", "audit_node", "audit_checkpoint")


def drop_append_only(engine: Engine) -> None:
    """Remove the triggers that refuse UPDATE, DELETE (and TRUNCATE) on the log's tables, as the database's owner
    can: what ``audit verify`` must catch is a log changed by someone who holds the database, not the broker."""
    for table in APPEND_ONLY_TABLES:
        if engine.dialect.name == "postgresql":
            execute(engine, f"DROP TRIGGER {table}_append_only ON {table}")
            execute(engine, f"DROP TRIGGER {table}_no_truncate ON {table}")
        else:
            execute(engine, f"DROP TRIGGER {table}_no_update")
            execute(engine, f"DROP TRIGGER {table}_no_delete")


@pytest.fixture
def tamperable(engine: Engine) -> Engine:
    """The database with ``audit_entry`` no longer append-only, for the tests that tamper with the log."""
    drop_append_only(engine)
    return engine


@pytest.fixture
def app_client(runtime: Runtime) -> Iterator[TestClient]:
    """The app without its background integrator, so that a test decides when checkpoints are signed."""
    with TestClient(create_app(runtime=runtime, audit_integrator=False), base_url=ISSUER,
                    client=LOOPBACK) as client:
        yield client






@pytest.fixture(scope="session")
def service_key() -> ECKey:
    return ECKey.generate_key("P-256", private=True, auto_kid=True)


@pytest.fixture
def service_client(runtime: Runtime, service_key: ECKey) -> tuple[str, ECKey]:
    """A city service registered with a public key (private_key_jwt)."""
    service = next(s for s in runtime.policy.services if s.kind == "service" and s.auth_method == "private_key_jwt")
    with session_scope(runtime.engine) as session:
        ClientRegistry(session, runtime.policy).register(
            service.id, jwks=json.dumps({"keys": [service_key.as_dict(private=False)]}), now=runtime.clock.now())
    return service.id, service_key


@pytest.fixture
def oidc_client(runtime: Runtime, oidc_provider: OidcTestProvider) -> Iterator[TestClient]:
    """The app (without its background integrator) with the test OpenID provider as the city's."""
    settings = runtime.settings.model_copy(update={
        "oidc_issuer": oidc_provider.issuer, "oidc_client_id": oidc_provider.client_id,
        "oidc_client_secret": SecretStr(oidc_provider.client_secret)})
    app = create_app(runtime=dataclasses.replace(runtime, settings=settings), audit_integrator=False)
    with TestClient(app, base_url="http://127.0.0.1:8000", client=LOOPBACK) as client:
        yield client
