"""The OAuth server's shared memory: concurrent requests, replay races between workers, purging."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from starlette.datastructures import Headers

from broker.db import session_scope
from broker.oauth.models import IssuedToken, UsedAssertion
from broker.oauth.requests import FormRequest
from broker.oauth.server import BrokerAuthorizationServer
from broker.oauth.store import PURGE_GRACE, PendingWrites
from broker.runtime import Runtime
from broker.timeutil import FixedClock
from tests.oauth.conftest import Credentials
from tests.oauth.support import TOKEN_URL, assertion, assertion_form


def _request(signed: str) -> FormRequest:
    return FormRequest("POST", TOKEN_URL, Headers({}), assertion_form(signed), {})


def _count(runtime: Runtime, table: type) -> int:
    with session_scope(runtime.engine) as session:
        return session.exec(select(func.count()).select_from(table)).one()[0]


def test_one_assertion_presented_at_once_to_two_workers_wins_once(
        app: FastAPI, other_api: TestClient, runtime: Runtime, registered: dict[str, Credentials], service_id: str,
        clock: FixedClock) -> None:
    workers: list[BrokerAuthorizationServer] = [app.state.oauth, other_api.app.state.oauth]
    signed = assertion(registered[service_id].key, service_id, clock)
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda i: workers[i % 2].handle("token", _request(signed)), range(8)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [400] * 7
    assert _count(runtime, IssuedToken) == 1


def test_concurrent_requests_each_get_their_token(app: FastAPI, runtime: Runtime, service_id: str,
                                                  registered: dict[str, Credentials], clock: FixedClock) -> None:
    server: BrokerAuthorizationServer = app.state.oauth
    signed = [assertion(registered[service_id].key, service_id, clock) for _ in range(24)]
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda s: server.handle("token", _request(s)), signed))
    assert [r.status_code for r in responses] == [200] * 24
    assert _count(runtime, IssuedToken) == 24 and _count(runtime, UsedAssertion) == 24


def test_expired_rows_are_purged_after_a_grace(app: FastAPI, runtime: Runtime, service_id: str,
                                               registered: dict[str, Credentials], clock: FixedClock) -> None:
    server: BrokerAuthorizationServer = app.state.oauth
    assert server.handle("token", _request(assertion(registered[service_id].key, service_id, clock))).status_code == 200
    later = clock.now() + timedelta(seconds=300) + PURGE_GRACE
    server.store.commit(PendingWrites(purge_before=later), later)
    assert _count(runtime, IssuedToken) == 1  # expired, but within the grace
    server.store.commit(PendingWrites(purge_before=later + timedelta(seconds=1)), later)
    assert _count(runtime, IssuedToken) == 0 and _count(runtime, UsedAssertion) == 0
