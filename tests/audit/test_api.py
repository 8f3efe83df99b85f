"""The audit API: the checkpoint for anyone, entries and proofs for auditors only, and a citizen's accesses."""

from __future__ import annotations

import csv
import io
import json

import pytest
import rfc8785
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from broker.audit import AuditEvent, actions, record
from broker.audit.sources import verify_export
from broker.consent.ledger import ConsentLedger
from broker.db import session_scope
from broker.identity.models import Citizen
from broker.keys import verify_compact
from broker.runtime import Runtime
from broker.timeutil import FixedClock
from tests.audit import reference
from tests.audit.conftest import Append, entries_of
from tests.audit.test_actions import plain_purpose
from tests.support.people import Person, logged_in

PROTECTED = ["/v1/audit/entries", "/v1/audit/proofs/inclusion?index=0", "/v1/audit/proofs/consistency?from=1&to=2"]


@pytest.fixture
def logged(app_client: TestClient, append: Append) -> TestClient:
    append(12)
    return app_client


def test_the_checkpoint_and_the_keys_are_public(logged: TestClient) -> None:
    answer = logged.get("/v1/audit/checkpoint")
    assert answer.status_code == 200
    body = answer.json()
    keys = logged.get("/v1/audit/keys").json()
    payload = verify_compact(body["checkpoint"], keys, typ="audit-checkpoint+jwt")
    assert payload == {"tree_size": body["tree_size"], "root_hash": body["root_hash"], "timestamp": body["timestamp"]}
    assert body["tree_size"] == 13  # 12 entries and the policy loaded at start


@pytest.mark.parametrize("path", PROTECTED)
def test_entries_and_proofs_need_a_session(logged: TestClient, path: str) -> None:
    assert logged.get(path).status_code == 401


@pytest.mark.parametrize("path", PROTECTED)
def test_citizens_and_admins_get_403_and_the_refusal_is_logged(
        logged: TestClient, engine: Engine, runtime: Runtime, citizen: Person, admin: Person, path: str) -> None:
    for person, actor in ((citizen, f"citizen:{runtime.secrets.pseudonym(citizen.citizen_id or '')}"),
                          (admin, f"staff:{admin.account_id}")):
        logged_in(logged, person)
        refused = logged.get(path)
        assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"
        assert entries_of(engine, action=actions.AUTHORIZATION_FAILED)[-1]["actor"] == actor


def test_auditors_page_through_filtered_entries(logged: TestClient, auditor: Person, engine: Engine) -> None:
    logged_in(logged, auditor)
    seen, cursor = [], None
    while True:
        page = logged.get("/v1/audit/entries", params={"action": "test.event", "limit": 5,
                                                       **({"cursor": cursor} if cursor is not None else {})})
        assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
        body = page.json()
        for served in body["entries"]:
            assert set(served) == {"index", "leaf_hash", "entry"}
            assert served["leaf_hash"] == reference.leaf(rfc8785.dumps(served["entry"])).hex()
        seen += [served["index"] for served in body["entries"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == list(range(1, 13))
    login_entries = logged.get("/v1/audit/entries", params={"actor": f"staff:{auditor.account_id}"}).json()
    assert [e["entry"]["action"] for e in login_entries["entries"]] == ["login"]
    assert logged.get("/v1/audit/entries", params={"since": "2030-01-01T00:00:00Z"}).json()["entries"] == []


def test_the_json_lines_export_verifies_offline_with_what_anyone_can_fetch(logged: TestClient,
                                                                           auditor: Person) -> None:
    checkpoint = logged.get("/v1/audit/checkpoint").json()["checkpoint"]
    keys = logged.get("/v1/audit/keys").json()
    logged_in(logged, auditor)
    export = logged.get("/v1/audit/entries", params={"format": "jsonl"})
    assert export.status_code == 200 and export.headers["content-type"].startswith("application/jsonl")
    lines = export.text.splitlines(keepends=True)
    assert len(lines) == 14  # with the auditor's login
    assert verify_export(lines, keys, [checkpoint]).ok
    accepted = logged.get("/v1/audit/entries", headers={"Accept": "application/x-ndjson"})
    assert accepted.text == export.text


def test_the_csv_export_keeps_each_entry_verbatim(logged: TestClient, auditor: Person) -> None:
    logged_in(logged, auditor)
    answer = logged.get("/v1/audit/entries", params={"format": "csv", "action": "test.event"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert len(rows) == 12
    first = rows[0]
    assert first["action"] == "test.event" and first["actor"] == "system"
    assert first["leaf_hash"] == reference.leaf(first["entry"].encode()).hex()
    assert json.loads(first["entry"])["seq"] == int(first["index"])


def test_proofs_served_to_auditors_verify_independently(logged: TestClient, auditor: Person) -> None:
    small = logged.get("/v1/audit/checkpoint").json()
    logged_in(logged, auditor)  # one more entry
    big = logged.get("/v1/audit/checkpoint").json()
    assert big["tree_size"] == small["tree_size"] + 1
    for index in range(big["tree_size"]):
        proof = logged.get("/v1/audit/proofs/inclusion", params={"index": index, "size": big["tree_size"]}).json()
        assert proof["checkpoint"] == big["checkpoint"]
        assert reference.verify_inclusion(index, big["tree_size"], bytes.fromhex(proof["leaf_hash"]),
                                          [bytes.fromhex(h) for h in proof["inclusion_path"]],
                                          bytes.fromhex(big["root_hash"]))
    consistency = logged.get("/v1/audit/proofs/consistency",
                             params={"from": small["tree_size"], "to": big["tree_size"]}).json()
    assert reference.verify_consistency(small["tree_size"], big["tree_size"], bytes.fromhex(small["root_hash"]),
                                        bytes.fromhex(big["root_hash"]),
                                        [bytes.fromhex(h) for h in consistency["consistency_path"]])
    assert logged.get("/v1/audit/proofs/inclusion", params={"index": 99}).status_code == 422
    assert logged.get("/v1/audit/proofs/consistency", params={"from": 5, "to": 999}).status_code == 404


def _release(session: object, at: object, purpose: str, *, decision: str = "allow", version: int | None = None,
             query_id: str = "q") -> int:
    details: dict[str, object] = {"service": "mobility", "period": "2026", "epsilon_charged": 0.1,
                                  "caps": {"per_query": 0.5, "per_service": 4.0, "total": 6.0},
                                  "statistic": "mean", "query_id": query_id}
    if version is not None:
        details["purpose_version"] = version
    return record(session, AuditEvent(actor="service:mobility", action="query", purpose=purpose, dataset="trips",
                                      decision=decision, epsilon=0.1, details=details), at)  # type: ignore[arg-type]


def test_a_citizen_sees_the_releases_made_while_their_consent_counted(
        app_client: TestClient, engine: Engine, runtime: Runtime, clock: FixedClock, citizen: Person) -> None:
    purpose = plain_purpose(runtime.policy)
    public_task = next(p.id for p in runtime.policy.purposes if not p.takes_consent)
    with session_scope(engine) as session:
        _release(session, clock.now(), purpose, query_id="before")
    clock.advance(hours=1)
    with session_scope(engine) as session:
        me = session.get(Citizen, citizen.citizen_id)
        ledger = ConsentLedger(session, runtime.policy, runtime.secrets, clock)
        ledger.set_state(me, purpose, "given")
    clock.advance(hours=1)
    with session_scope(engine) as session:
        during = _release(session, clock.now(), purpose, query_id="during", version=1)
        _release(session, clock.now(), purpose, query_id="other-version", version=7)
        _release(session, clock.now(), purpose, decision="deny", query_id="refused")
        public = _release(session, clock.now(), public_task, query_id="public-task")
    clock.advance(hours=1)
    with session_scope(engine) as session:
        ConsentLedger(session, runtime.policy, runtime.secrets, clock).set_state(
            session.get(Citizen, citizen.citizen_id), purpose, "withdrawn")
    clock.advance(hours=1)
    with session_scope(engine) as session:
        _release(session, clock.now(), purpose, query_id="after")

    logged_in(app_client, citizen)
    answer = app_client.get("/v1/me/accesses")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    listed = body["accesses"]
    assert [(a["index"], a["query_id"]) for a in listed] == [(during, "during"), (public, "public-task")]
    assert listed[0]["service"] == "mobility" and listed[0]["statistic"] == "mean" and listed[0]["epsilon"] == 0.1
    assert listed[1]["legal_basis"] != listed[0]["legal_basis"]
    keys = app_client.get("/v1/audit/keys").json()
    root = bytes.fromhex(verify_compact(body["checkpoint"], keys)["root_hash"])
    for access in listed:
        leaf = reference.leaf(rfc8785.dumps(access["entry"]))
        assert leaf.hex() == access["leaf_hash"]
        assert reference.verify_inclusion(access["index"], body["tree_size"], leaf,
                                          [bytes.fromhex(h) for h in access["inclusion_path"]], root)
    paged = app_client.get("/v1/me/accesses", params={"limit": 1}).json()
    assert [a["index"] for a in paged["accesses"]] == [during] and paged["next_cursor"] == during
    rest = app_client.get("/v1/me/accesses", params={"cursor": during}).json()
    assert [a["index"] for a in rest["accesses"]] == [public] and rest["next_cursor"] is None
