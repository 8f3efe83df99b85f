"""No personal data and no secret ever enters the log: citizens appear by pseudonym only."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from joserfc.jwk import ECKey
from sqlalchemy import Engine, text

from broker.api.csrf import CSRF_COOKIE
from broker.api.portal import SESSION_COOKIE
from broker.runtime import Runtime
from broker.timeutil import FixedClock
from tests.audit.test_actions import plain_purpose
from tests.oauth.support import access_token
from tests.support.people import Person, csrf_headers, logged_in, login


def test_a_busy_session_leaves_only_pseudonyms_in_the_log(
        app_client: TestClient, engine: Engine, runtime: Runtime, clock: FixedClock, citizen: Person,
        other_citizen: Person, auditor: Person, service_client: tuple[str, ECKey]) -> None:
    secrets_seen: list[str] = []
    purpose = plain_purpose(runtime.policy)
    login(app_client, citizen.email, "a wrong password")
    login(app_client, "someone.unknown@lyon.example", "guess")
    logged_in(app_client, other_citizen)
    theirs = app_client.put(f"/v1/me/consents/{purpose}", json={"state": "given"},
                            headers=csrf_headers(app_client)).json()["record"]["id"]
    logged_in(app_client, citizen)
    secrets_seen += [app_client.cookies[SESSION_COOKIE], app_client.cookies[CSRF_COOKIE]]
    app_client.put(f"/v1/me/consents/{purpose}", json={"state": "given"}, headers=csrf_headers(app_client))
    assert app_client.get(f"/v1/me/receipts/{theirs}").status_code == 404
    app_client.get("/v1/audit/entries")  # not an auditor
    assert app_client.request("DELETE", "/v1/me", json={"password": citizen.password},
                              headers=csrf_headers(app_client)).status_code == 204
    logged_in(app_client, auditor)
    app_client.cookies.clear()  # a service has no portal session
    secrets_seen.append(access_token(app_client, service_client[1], service_client[0], clock))

    with engine.connect() as connection:
        log = "\n".join(connection.execute(text("SELECT body FROM audit_entry ORDER BY seq")).scalars())
    assert "login.failed" in log and "erasure" in log and "receipt.issued" in log and "token.issued" in log
    personal = [citizen.email, other_citizen.email, auditor.email, "someone.unknown", "lyon.example",
                "Habitant Test", citizen.citizen_id, other_citizen.citizen_id, citizen.account_id,
                other_citizen.account_id, citizen.password, "a wrong password", "guess", "testclient", "127.0.0.1"]
    for value in [*personal, *secrets_seen]:
        assert value and value not in log, value
    pseudonyms = {runtime.secrets.pseudonym(p.citizen_id or "") for p in (citizen, other_citizen)}
    named = set(re.findall(r'"citizen:([^"]*)"', log))
    assert named and named <= pseudonyms
