"""Fixtures for the portal login and citizen API tests: people with accounts, apps with other settings, the
test OpenID provider."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from broker.app import create_app
from broker.runtime import Runtime
from tests.support.oidc_provider import OidcTestProvider

AppFactory = Callable[..., AbstractContextManager[TestClient]]





@pytest.fixture
def app_with(runtime: Runtime) -> AppFactory:
    """A client of an app on the same database and clock, with some settings changed."""

    @contextmanager
    def build(base_url: str = "http://127.0.0.1:8000", address: str = "testclient",
              **settings: Any) -> Iterator[TestClient]:
        changed = dataclasses.replace(runtime, settings=runtime.settings.model_copy(update=settings))
        with TestClient(create_app(runtime=changed), base_url=base_url, client=(address, 50000)) as client:
            yield client

    return build


@pytest.fixture
def oidc_client(app_with: AppFactory, oidc_provider: OidcTestProvider) -> Iterator[TestClient]:
    """A broker app whose portal logs in through the test provider."""
    with app_with(oidc_issuer=oidc_provider.issuer, oidc_client_id=oidc_provider.client_id,
                  oidc_client_secret=SecretStr(oidc_provider.client_secret)) as client:
        yield client
