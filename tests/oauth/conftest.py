"""Fixtures for the OAuth tests: a policy with one ``client_secret_basic`` service, registered clients with
their private keys, and apps reached from loopback (the transport rule refuses plain http otherwise).

The clock is held still at the real time of the test: authlib's own client signs its assertions with
``time.time()``, and the broker checks them with its clock.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from joserfc.jwk import ECKey

from broker.app import create_app
from broker.db import session_scope
from broker.oauth.registration import ClientRegistry
from broker.policy import Policy
from broker.runtime import Runtime
from broker.settings import Settings
from broker.timeutil import FixedClock
from tests.conftest import POLICY_DIR
from tests.oauth.support import ISSUER, LOOPBACK, guarded_test_routes

#: Added to a copy of the policy: the only service allowed to authenticate with a shared secret.
BASIC_SERVICE = "statistics-office"


@dataclass(frozen=True)
class Credentials:
    client_id: str
    key: ECKey | None = None
    secret: str | None = None


@pytest.fixture(scope="session")
def oauth_policy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("oauth-policies") / "policies"
    shutil.copytree(POLICY_DIR, target)
    services = yaml.safe_load((target / "services.yaml").read_text())
    first = next(s for s in services["services"] if s.get("kind", "service") == "service")
    services["services"].append({
        "id": BASIC_SERVICE, "name": "Bureau des statistiques", "department": "Métropole de Lyon",
        "kind": "service", "purposes": first["purposes"][:1], "auth_method": "client_secret_basic",
    })
    (target / "services.yaml").write_text(yaml.safe_dump(services, allow_unicode=True, sort_keys=False))
    return target


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def settings(tmp_path: Path, database_url: str, oauth_policy_dir: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, policy_dir=oauth_policy_dir,
                    issuer=ISSUER)


@pytest.fixture
def oauth_policy(runtime: Runtime) -> Policy:
    return runtime.policy


@pytest.fixture(scope="session")
def client_keys() -> dict[str, ECKey]:
    """One P-256 key per client id, generated once per session (with a kid, as clients publish them)."""
    return {}


def _key_for(client_keys: dict[str, ECKey], client_id: str) -> ECKey:
    if client_id not in client_keys:
        client_keys[client_id] = ECKey.generate_key("P-256", private=True, auto_kid=True)
    return client_keys[client_id]


@pytest.fixture
def registered(runtime: Runtime, client_keys: dict[str, ECKey]) -> dict[str, Credentials]:
    """Every service and provider of the policy registered with a public key; the basic one with a secret."""
    out: dict[str, Credentials] = {}
    with session_scope(runtime.engine) as session:
        registry = ClientRegistry(session, runtime.policy)
        for service in runtime.policy.services:
            if service.id == BASIC_SERVICE:
                done = registry.register(service.id, secret=True, now=runtime.clock.now())
                out[service.id] = Credentials(service.id, secret=done.secret)
                continue
            key = _key_for(client_keys, service.id)
            jwks = json.dumps({"keys": [key.as_dict(private=False)]})
            registry.register(service.id, jwks=jwks, now=runtime.clock.now())
            out[service.id] = Credentials(service.id, key=key)
    return out


@pytest.fixture
def service_id(oauth_policy: Policy) -> str:
    """A city service (private_key_jwt) holding at least two purposes."""
    return next(s.id for s in oauth_policy.services if s.kind == "service" and len(s.purposes) >= 2
                and s.auth_method == "private_key_jwt")


@pytest.fixture
def provider_id(oauth_policy: Policy) -> str:
    return next(s.id for s in oauth_policy.services if s.kind == "provider")


@pytest.fixture
def app(runtime: Runtime, registered: dict[str, Credentials]) -> Iterator[FastAPI]:
    app = create_app(runtime=runtime)
    app.include_router(guarded_test_routes())
    yield app


@pytest.fixture
def api(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url=ISSUER, client=LOOPBACK) as client:
        yield client


@pytest.fixture
def other_api(runtime: Runtime, registered: dict[str, Credentials]) -> Iterator[TestClient]:
    """A second app instance (another worker) on the same database, with its own engine and caches."""
    other = Runtime.from_settings(runtime.settings, clock=runtime.clock)
    app = create_app(runtime=other)
    app.include_router(guarded_test_routes())
    with TestClient(app, base_url=ISSUER, client=LOOPBACK) as client:
        yield client
    other.dispose()
