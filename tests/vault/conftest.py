"""Fixtures for the vault tests: a policy with a second provider, registered clients, tokens, citizens.

The second provider (``parking-operator``) may write one dataset only, so that "a provider not listed for the
dataset" can be tested; the dataset tables are those of the shipped policy, so the migrated templates fit.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from joserfc.jwk import ECKey
from sqlalchemy import MetaData, select
from sqlalchemy.engine import Engine

from broker.app import create_app
from broker.db import session_scope
from broker.identity.citizens import CitizenService
from broker.oauth.registration import ClientRegistry
from broker.policy import Policy
from broker.rights import erase_citizen
from broker.runtime import Runtime
from broker.scopes import INGEST
from broker.settings import Settings
from broker.vault.tables import build_table
from tests.conftest import POLICY_DIR
from tests.oauth.support import ISSUER, LOOPBACK, access_token, bearer

PROVIDER = "metering-platform"
NARROW_PROVIDER = "parking-operator"
NARROW_DATASET = "parking-sessions"
CITY_SERVICE = "mobility"


@pytest.fixture(scope="session")
def vault_policy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("vault-policies") / "policies"
    shutil.copytree(POLICY_DIR, target)
    services = yaml.safe_load((target / "services.yaml").read_text())
    services["services"].append({
        "id": NARROW_PROVIDER, "name": "Opérateur de stationnement", "department": "Métropole de Lyon",
        "kind": "provider", "ingest": [NARROW_DATASET], "auth_method": "private_key_jwt",
    })
    (target / "services.yaml").write_text(yaml.safe_dump(services, allow_unicode=True, sort_keys=False))
    return target


@pytest.fixture
def settings(tmp_path: Path, database_url: str, vault_policy_dir: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, policy_dir=vault_policy_dir,
                    issuer=ISSUER)


@pytest.fixture(scope="session")
def client_keys() -> dict[str, ECKey]:
    return {sid: ECKey.generate_key("P-256", private=True, auto_kid=True)
            for sid in (PROVIDER, NARROW_PROVIDER, CITY_SERVICE)}


@pytest.fixture
def registered(runtime: Runtime, client_keys: dict[str, ECKey]) -> dict[str, ECKey]:
    with session_scope(runtime.engine) as session:
        registry = ClientRegistry(session, runtime.policy)
        for service_id, key in client_keys.items():
            jwks = json.dumps({"keys": [key.as_dict(private=False)]})
            registry.register(service_id, jwks=jwks, now=runtime.clock.now())
    return client_keys


@pytest.fixture
def api(runtime: Runtime, registered: dict[str, ECKey]) -> Iterator[TestClient]:
    with TestClient(create_app(runtime=runtime), base_url=ISSUER, client=LOOPBACK) as client:
        yield client


def token_for(api: TestClient, runtime: Runtime, keys: dict[str, ECKey], service_id: str, **form: str) -> str:
    return access_token(api, keys[service_id], service_id, runtime.clock, **form)  # type: ignore[arg-type]


@pytest.fixture
def provider_headers(api: TestClient, runtime: Runtime, registered: dict[str, ECKey]) -> dict[str, str]:
    return bearer(token_for(api, runtime, registered, PROVIDER, scope=INGEST))


class Vault:
    """Test helper: make citizens, post batches, read back what the vault holds."""

    def __init__(self, runtime: Runtime, api: TestClient, headers: dict[str, str]) -> None:
        self.runtime = runtime
        self.api = api
        self.headers = headers

    @property
    def policy(self) -> Policy:
        return self.runtime.policy

    @property
    def engine(self) -> Engine:
        return self.runtime.engine

    def citizens(self, n: int, *, erased: int = 0) -> list[str]:
        """``n`` registered citizens' ids; the last ``erased`` of them erased (Art 17)."""
        ids = []
        with session_scope(self.engine) as session:
            service = CitizenService(session, self.runtime.secrets)
            for _ in range(n):
                citizen = service.register(email=f"{uuid.uuid4().hex}@lyon.example", name="Habitant Test",
                                           birth_date=date(1985, 6, 1), district="lyon-3", locale="fr",
                                           now=self.runtime.clock.now())
                ids.append(citizen.id)
            for citizen_id in ids[n - erased:]:
                erase_citizen(session, self.policy, service.get(citizen_id), self.runtime.clock.now())
        return ids

    def post(self, dataset: str, records: list[dict[str, Any]], *, batch_id: str | None = None,
             headers: dict[str, str] | None = None) -> httpx.Response:
        body = {"batch_id": batch_id or f"b-{uuid.uuid4().hex}", "records": records}
        return self.api.post(f"/v1/ingest/{dataset}", json=body, headers=headers or self.headers)

    def post_raw(self, dataset: str, content: bytes | str) -> httpx.Response:
        return self.api.post(f"/v1/ingest/{dataset}", content=content,
                             headers={**self.headers, "Content-Type": "application/json"})

    def rows(self, dataset_id: str) -> list[dict[str, Any]]:
        dataset = self.policy.dataset(dataset_id)
        assert dataset is not None
        table = build_table(dataset, MetaData())
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(table).order_by(table.c.id)).mappings()]

    def pseudonym(self, citizen_id: str) -> str:
        return self.runtime.secrets.pseudonym(citizen_id)


@pytest.fixture
def vault(runtime: Runtime, api: TestClient, provider_headers: dict[str, str]) -> Vault:
    return Vault(runtime, api, provider_headers)
