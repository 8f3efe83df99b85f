"""Every logged action writes its entry, in the transaction of the action; a failed audit write undoes the action."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc.jwk import ECKey
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from broker.app import create_app
from broker.audit import actions
from broker.cli import app as cli
from broker.commands.db import upgrade_runtime
from broker.consent.ledger import ConsentLedger
from broker.db import session_scope
from broker.identity.citizens import CitizenService
from broker.identity.models import Citizen
from broker.policy import Policy, policy_digest
from broker.runtime import Runtime
from broker.settings import Settings
from broker.timeutil import FixedClock
from tests.audit.conftest import entries_of, execute
from tests.oauth.support import ISSUER, LOOPBACK, access_token, assertion, assertion_form, claims_of, request_token
from tests.support.people import Person, csrf_headers, logged_in, login


def plain_purpose(policy: Policy) -> str:
    return next(p.id for p in policy.purposes if p.takes_consent and not p.special_category
                and p.status == "active" and policy.minimum_age(p) == policy.broker.default_minimum_age)


def pseudonym(runtime: Runtime, person: Person) -> str:
    return runtime.secrets.pseudonym(person.citizen_id or "")


def only(engine: Engine, action: str) -> dict[str, Any]:
    found = entries_of(engine, action=action)
    assert len(found) == 1, found
    return found[0]


@pytest.fixture
def me(app_client: TestClient, citizen: Person) -> TestClient:
    return logged_in(app_client, citizen)


def test_the_policy_in_force_is_logged_when_a_worker_starts_and_at_db_upgrade(
        app_client: TestClient, runtime: Runtime, engine: Engine) -> None:
    started = only(engine, actions.POLICY_LOADED)
    assert started["actor"] == "system"
    assert started["details"]["policy_digest"] == policy_digest(runtime.policy)
    assert started["details"]["event"] == "start"
    upgrade_runtime(runtime)
    upgraded = entries_of(engine, action=actions.POLICY_LOADED)[-1]
    assert upgraded["actor"] == "operator" and upgraded["details"]["event"] == "upgrade"


def test_each_consent_change_is_logged_by_pseudonym(engine: Engine, runtime: Runtime, clock: FixedClock) -> None:
    purpose = plain_purpose(runtime.policy)
    with session_scope(engine) as session:
        citizen = CitizenService(session, runtime.secrets).register(
            email="x@lyon.example", name="Camille", birth_date=None, district=None, locale="fr", now=clock.now())
        ledger = ConsentLedger(session, runtime.policy, runtime.secrets, clock)
        given = ledger.set_state(citizen, purpose, "given")
        ledger.set_state(citizen, purpose, "withdrawn")
        ledger.set_state(citizen, purpose, "withdrawn")  # nothing changes: nothing logged
        ledger.set_state(citizen, purpose, "given")
        ledger.revoke(citizen, purpose)
        ledger.set_state(citizen, purpose, "given")
    clock.advance(days=800)
    with session_scope(engine) as session:
        assert ConsentLedger(session, runtime.policy, runtime.secrets, clock).expire_due() == 1
    changes = entries_of(engine, action=actions.CONSENT_CHANGED)
    mine = f"citizen:{citizen.pseudonym}"
    assert [(c["actor"], c["details"]["state"]) for c in changes] == [
        (mine, "given"), (mine, "withdrawn"), (mine, "given"), ("controller", "revoked"), (mine, "given"),
        ("system", "expired")]
    assert changes[0]["subject"] == citizen.pseudonym and changes[0]["purpose"] == purpose
    assert changes[0]["details"]["record_id"] == given.id and changes[0]["details"]["evidence"] == given.evidence


def test_receipts_issued_are_logged(me: TestClient, engine: Engine, runtime: Runtime, citizen: Person) -> None:
    purpose = plain_purpose(runtime.policy)
    record = me.put(f"/v1/me/consents/{purpose}", json={"state": "given"}, headers=csrf_headers(me)).json()["record"]
    assert me.get(f"/v1/me/receipts/{record['id']}").status_code == 200
    issued = entries_of(engine, action=actions.RECEIPT_ISSUED)
    assert len(issued) == 2
    assert {e["actor"] for e in issued} == {f"citizen:{pseudonym(runtime, citizen)}"}
    assert all(e["details"]["record_id"] == record["id"] and e["purpose"] == purpose for e in issued)


def test_probing_another_citizens_receipt_is_logged_as_an_authorization_failure(
        me: TestClient, engine: Engine, runtime: Runtime, citizen: Person, other_citizen: Person) -> None:
    purpose = plain_purpose(runtime.policy)
    with session_scope(engine) as session:
        other = session.get(Citizen, other_citizen.citizen_id)
        theirs = ConsentLedger(session, runtime.policy, runtime.secrets, runtime.clock).set_state(other, purpose,
                                                                                                  "given")
    assert me.get(f"/v1/me/receipts/{theirs.id}").status_code == 404
    refused = only(engine, actions.AUTHORIZATION_FAILED)
    assert refused["actor"] == f"citizen:{pseudonym(runtime, citizen)}"
    assert refused["details"]["resource"] == "consent-receipt"
    assert theirs.id not in str(refused)  # free input is not logged


def test_logins_are_logged_by_pseudonym_and_failures_without_the_address(
        app_client: TestClient, engine: Engine, runtime: Runtime, citizen: Person, auditor: Person) -> None:
    assert login(app_client, citizen.email, "wrong").status_code == 401
    assert login(app_client, "nobody@lyon.example", "whatever").status_code == 401
    logged_in(app_client, citizen)
    logged_in(app_client, auditor)
    failed = entries_of(engine, action=actions.LOGIN_FAILED)
    assert [(f["actor"], f["details"]["reason"]) for f in failed] == [
        (f"citizen:{pseudonym(runtime, citizen)}", "wrong-password"), ("anonymous", "unknown-account")]
    assert "nobody" not in str(failed)
    done = entries_of(engine, action=actions.LOGIN)
    assert [(d["actor"], d["details"]["role"]) for d in done] == [
        (f"citizen:{pseudonym(runtime, citizen)}", "citizen"), (f"staff:{auditor.account_id}", "auditor")]


def test_erasure_is_logged(me: TestClient, engine: Engine, runtime: Runtime, citizen: Person) -> None:
    assert me.request("DELETE", "/v1/me", json={"password": citizen.password},
                      headers=csrf_headers(me)).status_code == 204
    erased = only(engine, actions.ERASURE)
    assert erased["subject"] == pseudonym(runtime, citizen)
    assert erased["actor"] == f"citizen:{pseudonym(runtime, citizen)}"
    assert isinstance(erased["details"]["vault_rows"], dict)


def test_tokens_issued_and_revoked_are_logged(app_client: TestClient, engine: Engine,
                                              service_client: tuple[str, ECKey], clock: FixedClock) -> None:
    service_id, key = service_client
    token = access_token(app_client, key, service_id, clock)
    jti = claims_of(token)[1]["jti"]
    issued = only(engine, actions.TOKEN_ISSUED)
    assert issued["actor"] == f"service:{service_id}" and issued["details"]["jti"] == jti
    assert token not in str(issued)
    for _ in range(2):  # the second revocation changes nothing: one entry
        signed = assertion(key, service_id, clock, audience=ISSUER + "/oauth/revoke")
        assert app_client.post("/oauth/revoke", data=assertion_form(signed, token=token)).status_code == 200
    revoked = only(engine, actions.TOKEN_REVOKED)
    assert revoked["actor"] == f"service:{service_id}" and revoked["details"]["jti"] == jti


def test_key_rotation_is_logged(engine: Engine, settings: Settings, runtime: Runtime) -> None:
    env = {"BROKER_DATA_DIR": str(settings.data_dir), "BROKER_DATABASE_URL": settings.resolved_database_url(),
           "BROKER_POLICY_DIR": str(settings.policy_dir)}
    result = CliRunner().invoke(cli, ["keys", "rotate"], env=env)
    assert result.exit_code == 0, result.output
    rotated = only(engine, actions.KEY_ROTATED)
    assert rotated["actor"] == "operator" and rotated["details"]["created"] in result.output


# -- an action whose audit write fails leaves no trace ---------------------------------------------------------

@pytest.fixture
def audit_refuses_writes(engine: Engine) -> Iterator[None]:
    """The database refuses every new audit entry (as a full disk or a broken connection would)."""
    if engine.dialect.name == "postgresql":
        execute(engine, "CREATE FUNCTION audit_refuse() RETURNS trigger LANGUAGE plpgsql AS "
                        "$$ BEGIN RAISE EXCEPTION 'audit write refused'; END $$")
        execute(engine, "CREATE TRIGGER audit_refuse BEFORE INSERT ON audit_entry FOR EACH ROW "
                        "EXECUTE FUNCTION audit_refuse()")
    else:
        execute(engine, "CREATE TRIGGER audit_refuse BEFORE INSERT ON audit_entry "
                        "BEGIN SELECT RAISE(ABORT, 'audit write refused'); END")
    yield


def _count(engine: Engine, table: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar() or 0)


def test_a_consent_change_whose_audit_entry_fails_is_not_made(engine: Engine, runtime: Runtime, clock: FixedClock,
                                                              citizen: Person, audit_refuses_writes: None) -> None:
    with pytest.raises(Exception, match="audit write refused"), session_scope(engine) as session:
        subject = session.get(Citizen, citizen.citizen_id)
        ConsentLedger(session, runtime.policy, runtime.secrets, clock).set_state(
            subject, plain_purpose(runtime.policy), "given")
    assert _count(engine, "consent_record") == 0
    assert _count(engine, "audit_entry") == 0 and _count(engine, "audit_state") == 0


def test_a_login_whose_audit_entry_fails_opens_no_session(runtime: Runtime, engine: Engine, citizen: Person,
                                                          audit_refuses_writes: None) -> None:
    app = create_app(runtime=runtime, audit_integrator=False)
    client = TestClient(app, base_url=ISSUER, raise_server_exceptions=False)  # no lifespan: it would log too
    assert login(client, citizen.email, citizen.password).status_code == 500
    assert _count(engine, "portal_session") == 0


def test_a_token_whose_audit_entry_fails_is_not_issued(runtime: Runtime, engine: Engine,
                                                       service_client: tuple[str, ECKey], clock: FixedClock,
                                                       audit_refuses_writes: None) -> None:
    service_id, key = service_client
    app = create_app(runtime=runtime, audit_integrator=False)
    client = TestClient(app, base_url=ISSUER, client=LOOPBACK, raise_server_exceptions=False)
    assert request_token(client, key, service_id, clock).status_code == 500
    assert _count(engine, "oauth_issued_token") == 0
