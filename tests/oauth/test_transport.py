"""Plain http only on loopback (or with the development setting); forwarded headers from trusted proxies only."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient

from broker.app import create_app
from broker.oauth.transport import is_loopback
from broker.runtime import Runtime
from broker.settings import Settings
from broker.timeutil import FixedClock
from tests.oauth.conftest import Credentials
from tests.oauth.support import access_token, assertion, assertion_form, bearer

PUBLIC = "https://broker.lyon.example"
PROXY = ("10.0.0.2", 40000)
OUTSIDE = ("203.0.113.7", 40000)


@contextmanager
def _app(runtime: Runtime, *, client: tuple[str, int], base_url: str, **overrides: object) -> Iterator[TestClient]:
    settings = Settings(**{**runtime.settings.model_dump(), **overrides})
    other = Runtime(settings=settings, engine=runtime.engine, reader=runtime.reader, policy=runtime.policy,
                    secrets=runtime.secrets,
                    clock=runtime.clock)
    app = create_app(runtime=other)
    with TestClient(app, base_url=base_url, client=client) as api:
        yield api


def _token_form(registered: dict[str, Credentials], service_id: str, clock: FixedClock, issuer: str) -> dict:
    return assertion_form(assertion(registered[service_id].key, service_id, clock, audience=issuer))


def test_loopback_names() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "::1", "localhost", "127.8.9.1", "::ffff:127.0.0.1"]))
    assert not any(map(is_loopback, ["10.0.0.1", "testclient", "", None, "203.0.113.7"]))


def test_plain_http_from_elsewhere_is_refused(runtime: Runtime, registered: dict[str, Credentials],
                                              service_id: str, clock: FixedClock, api: TestClient) -> None:
    token = access_token(api, registered[service_id].key, service_id, clock)  # from loopback: fine
    issuer = runtime.settings.issuer
    with _app(runtime, client=OUTSIDE, base_url=issuer) as outside:
        response = outside.post("/oauth/token", data=_token_form(registered, service_id, clock, issuer))
        assert response.status_code == 400 and response.json()["error"] == "invalid_request"
        assert "https" in response.json()["error_description"]
        guarded = outside.get("/v1/client", headers=bearer(token))
        assert guarded.status_code == 403 and guarded.json()["type"].endswith("/https-required")
        assert outside.get("/.well-known/oauth-authorization-server").status_code == 200  # public, no credential


def test_plain_http_on_loopback_needs_a_loopback_issuer(runtime: Runtime, registered: dict[str, Credentials],
                                                        service_id: str, clock: FixedClock) -> None:
    with _app(runtime, client=("127.0.0.1", 5000), base_url="http://127.0.0.1:8000", issuer=PUBLIC) as local:
        response = local.post("/oauth/token", data=_token_form(registered, service_id, clock, PUBLIC))
        assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_https_is_accepted_from_anywhere(runtime: Runtime, registered: dict[str, Credentials], service_id: str,
                                         clock: FixedClock) -> None:
    with _app(runtime, client=OUTSIDE, base_url=PUBLIC, issuer=PUBLIC) as outside:
        response = outside.post("/oauth/token", data=_token_form(registered, service_id, clock, PUBLIC))
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        assert outside.get("/v1/client", headers=bearer(token)).status_code == 200


def test_the_development_setting_allows_plain_http(runtime: Runtime, registered: dict[str, Credentials],
                                                   service_id: str, clock: FixedClock) -> None:
    issuer = "http://broker.internal:8000"
    with _app(runtime, client=OUTSIDE, base_url=issuer, issuer=issuer, allow_insecure_http=True) as dev:
        response = dev.post("/oauth/token", data=_token_form(registered, service_id, clock, issuer))
        assert response.status_code == 200, response.text


@pytest.mark.parametrize(("client", "trusted"), [(PROXY, True), (OUTSIDE, False)])
def test_forwarded_headers_count_from_trusted_proxies_only(
        runtime: Runtime, registered: dict[str, Credentials], service_id: str, clock: FixedClock,
        client: tuple[str, int], trusted: bool) -> None:
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.4"}
    with _app(runtime, client=client, base_url="http://broker.lyon.example", issuer=PUBLIC,
              trusted_proxies=["10.0.0.0/24"]) as behind_proxy:
        response = behind_proxy.post("/oauth/token", data=_token_form(registered, service_id, clock, PUBLIC),
                                     headers=forwarded)
        assert (response.status_code == 200) is trusted, response.text


def test_a_forged_loopback_address_does_not_help(runtime: Runtime, registered: dict[str, Credentials],
                                                 service_id: str, clock: FixedClock) -> None:
    issuer = runtime.settings.issuer
    with _app(runtime, client=OUTSIDE, base_url=issuer) as outside:
        response = outside.post("/oauth/token", data=_token_form(registered, service_id, clock, issuer),
                                headers={"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "https"})
        assert response.status_code == 400
