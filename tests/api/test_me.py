"""The citizen's JSON API: profile, consents with signed receipts, export and erasure, each only for oneself."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from broker.api.portal import SESSION_COOKIE
from broker.consent.receipts import verify_receipt
from broker.db import session_scope
from broker.errors import PROBLEM_BASE
from broker.identity.citizens import CitizenErased, CitizenService
from broker.identity.guardianship import Guardianships
from broker.identity.models import Citizen
from broker.keys import Secrets
from broker.policy import Policy
from broker.timeutil import FixedClock
from tests.support.people import Person, csrf_headers, logged_in, login, make_citizen

PROBLEM = "application/problem+json"
UNKNOWN = "00000000-0000-4000-8000-000000000000"


def plain_purpose(policy: Policy) -> str:
    return next(p.id for p in policy.purposes if p.takes_consent and not p.special_category
                and p.status == "active" and policy.minimum_age(p) <= policy.broker.default_minimum_age)


def special_purpose(policy: Policy) -> str:
    return next(p.id for p in policy.purposes if p.special_category and p.status == "active")


def non_consent_purpose(policy: Policy) -> str:
    return next(p.id for p in policy.purposes if not p.takes_consent)


@pytest.fixture
def me(client: TestClient, citizen: Person) -> TestClient:
    return logged_in(client, citizen)


def put_consent(client: TestClient, purpose: str, **body: object):
    return client.put(f"/v1/me/consents/{purpose}", json=body, headers=csrf_headers(client))


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/me"), ("PATCH", "/v1/me"), ("GET", "/v1/me/consents"), ("PUT", "/v1/me/consents/traffic-planning"),
    ("GET", "/v1/me/receipts/00000000-0000-0000-0000-000000000000"), ("GET", "/v1/me/export"), ("DELETE", "/v1/me"),
    ("GET", "/v1/me/wards"), ("GET", f"/v1/me/wards/{UNKNOWN}"), ("PUT", f"/v1/me/wards/{UNKNOWN}/consents/x"),
    ("GET", f"/v1/me/wards/{UNKNOWN}/receipts/{UNKNOWN}"),
])
def test_without_a_session_every_route_answers_401(client: TestClient, method: str, path: str) -> None:
    body = {"state": "given"} if method == "PUT" else {"privacy_cap": 1} if method == "PATCH" else None
    response = client.request(method, path, json=body)
    assert response.status_code == 401 and response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == PROBLEM_BASE + "unauthenticated"


def test_me_shows_my_identifiers_decrypted(me: TestClient, citizen: Person, secrets: Secrets) -> None:
    response = me.get("/v1/me")
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["email"] == citizen.email and body["name"] == "Habitant Test"
    assert body["pseudonym"] == secrets.pseudonym(citizen.citizen_id or "")
    assert body["district"] == "lyon-3" and body["locale"] == "fr"
    assert body["age_band"] == "18-or-over" and body["birth_date"] == "1985-06-01"
    assert body["privacy_cap"] == 10.0 and body["privacy_cap_is_default"] is True
    assert body["restricted"] is False and body["restricted_at"] is None


def test_the_overview_lists_every_purpose(me: TestClient, policy: Policy) -> None:
    consents = me.get("/v1/me/consents").json()["consents"]
    assert [c["purpose_id"] for c in consents] == [p.id for p in policy.purposes]
    by_id = {c["purpose_id"]: c for c in consents}
    assert by_id[plain_purpose(policy)]["state"] == "requested"
    assert by_id[non_consent_purpose(policy)]["state"] is None
    assert not any(c["counts"] for c in consents)


def test_give_then_withdraw_each_with_a_receipt_that_verifies(me: TestClient, policy: Policy) -> None:
    purpose = plain_purpose(policy)
    jwks = me.get("/.well-known/jwks.json").json()
    pseudonym = me.get("/v1/me").json()["pseudonym"]

    given = put_consent(me, purpose, state="given")
    assert given.status_code == 200, given.text
    record = given.json()["record"]
    assert record["state"] == "given" and record["purpose_id"] == purpose and record["method"] == "api"
    payload = verify_receipt(given.json()["receipt"], jwks)
    assert payload["record_id"] == record["id"] and payload["state"] == "given"
    assert payload["subject"]["pseudonym"] == pseudonym
    assert next(c for c in me.get("/v1/me/consents").json()["consents"] if c["purpose_id"] == purpose)["counts"]

    withdrawn = put_consent(me, purpose, state="withdrawn")
    assert withdrawn.status_code == 200
    assert withdrawn.json()["record"]["previous_id"] == record["id"]
    assert verify_receipt(withdrawn.json()["receipt"], jwks)["state"] == "withdrawn"
    status = next(c for c in me.get("/v1/me/consents").json()["consents"] if c["purpose_id"] == purpose)
    assert status["state"] == "withdrawn" and not status["counts"]


def test_special_category_needs_explicit_confirmation(me: TestClient, policy: Policy) -> None:
    purpose = special_purpose(policy)
    refused = put_consent(me, purpose, state="given")
    assert refused.status_code == 422 and refused.headers["content-type"] == PROBLEM
    assert refused.json()["rule"] == "explicit-confirmation-required"
    given = put_consent(me, purpose, state="given", explicit=True)
    assert given.status_code == 200 and given.json()["record"]["consent_type"] == "explicit"


@pytest.mark.parametrize(("purpose", "body", "status", "rule"), [
    ("non-consent", {"state": "given"}, 422, "legal-basis-not-consent"),
    ("no-such-purpose", {"state": "given"}, 404, None),
    ("plain", {"state": "revoked"}, 422, None),  # only the controller revokes
    ("plain", {"state": "given", "citizen_id": "someone-else"}, 422, None),
])
def test_consent_changes_outside_the_rules_are_refused(me: TestClient, policy: Policy, purpose: str,
                                                       body: dict, status: int, rule: str | None) -> None:
    purpose_id = {"non-consent": non_consent_purpose(policy), "plain": plain_purpose(policy)}.get(purpose, purpose)
    response = put_consent(me, purpose_id, **body)
    assert response.status_code == status and response.headers["content-type"] == PROBLEM
    assert response.json().get("rule") == rule


def test_a_receipt_can_be_fetched_again(me: TestClient, policy: Policy) -> None:
    record = put_consent(me, plain_purpose(policy), state="given").json()["record"]
    again = me.get(f"/v1/me/receipts/{record['id']}")
    assert again.status_code == 200 and again.json()["record"] == record
    assert verify_receipt(again.json()["receipt"], me.get("/.well-known/jwks.json").json())["record_id"] == record["id"]


def test_another_citizens_receipt_answers_like_an_unknown_one(client: TestClient, citizen: Person,
                                                              other_citizen: Person, policy: Policy) -> None:
    logged_in(client, other_citizen)
    theirs = put_consent(client, plain_purpose(policy), state="given").json()["record"]["id"]
    logged_in(client, citizen)
    foreign = client.get(f"/v1/me/receipts/{theirs}")
    unknown = client.get("/v1/me/receipts/00000000-0000-4000-8000-000000000000")
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json() == unknown.json()
    assert foreign.headers["content-type"] == unknown.headers["content-type"] == PROBLEM


def test_a_citizen_only_ever_acts_on_their_own_consents(client: TestClient, engine: Engine, citizen: Person,
                                                        other_citizen: Person, policy: Policy,
                                                        secrets: Secrets) -> None:
    purpose = plain_purpose(policy)
    logged_in(client, other_citizen)
    assert put_consent(client, purpose, state="given").status_code == 200
    logged_in(client, citizen)
    assert next(c for c in client.get("/v1/me/consents").json()["consents"]
                if c["purpose_id"] == purpose)["record_id"] is None  # theirs is not mine
    assert put_consent(client, purpose, state="refused").status_code == 200
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT pseudonym, state FROM consent_record ORDER BY seq")).all()
    assert [tuple(r) for r in rows] == [(secrets.pseudonym(other_citizen.citizen_id or ""), "given"),
                                       (secrets.pseudonym(citizen.citizen_id or ""), "refused")]


def test_no_route_takes_a_citizen_from_the_request(client: TestClient) -> None:
    """The only way to say whose data is meant is the session: no path, query or body field names a citizen."""
    paths = client.get("/openapi.json").json()["paths"]
    mine = {path: ops for path, ops in paths.items() if path.startswith("/v1/me")}
    assert mine
    for ops in mine.values():
        for op in ops.values():
            # cursor and limit page through /v1/me/accesses; neither can name a citizen. ward_ref is the id of
            # one of the session citizen's own guardianship links, looked up among those links only.
            assert {p["name"] for p in op.get("parameters", [])} <= {"purpose_id", "record_id", "cursor", "limit",
                                                                      "ward_ref"}


def test_export_is_an_attachment_with_my_consents(me: TestClient, citizen: Person, policy: Policy) -> None:
    record = put_consent(me, plain_purpose(policy), state="given").json()["record"]
    response = me.get("/v1/me/export")
    assert response.status_code == 200
    assert response.headers["content-disposition"].startswith("attachment;")
    document = response.json()
    assert document["citizen"]["email"] == citizen.email
    assert [r["id"] for r in document["consent_records"]] == [record["id"]]


def test_erasure_needs_the_right_password(me: TestClient, engine: Engine, citizen: Person,
                                          secrets: Secrets) -> None:
    wrong = me.request("DELETE", "/v1/me", json={"password": "not it"}, headers=csrf_headers(me))
    assert wrong.status_code == 403 and wrong.json()["type"] == PROBLEM_BASE + "reauthentication-failed"
    missing = me.request("DELETE", "/v1/me", json={}, headers=csrf_headers(me))
    assert missing.status_code == 403
    assert me.get("/v1/me").status_code == 200  # nothing happened

    token = me.cookies[SESSION_COOKIE]
    erased = me.request("DELETE", "/v1/me", json={"password": citizen.password}, headers=csrf_headers(me))
    assert erased.status_code == 204
    me.cookies.set(SESSION_COOKIE, token, domain="127.0.0.1")
    assert me.get("/v1/me").status_code == 401  # the session is gone
    with session_scope(engine) as session:
        row = session.get(Citizen, citizen.citizen_id)
        assert row is not None and row.erased_at is not None and row.wrapped_key is None
        with pytest.raises(CitizenErased):
            CitizenService(session, secrets).identifiers(row)  # unreadable for good
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM portal_session")).scalar() == 0
    assert login(me, citizen.email, citizen.password).status_code == 401


def test_password_confirmation_is_rate_limited(me: TestClient, citizen: Person) -> None:
    for _ in range(5):
        assert me.request("DELETE", "/v1/me", json={"password": "guess"}, headers=csrf_headers(me)).status_code == 403
    blocked = me.request("DELETE", "/v1/me", json={"password": citizen.password}, headers=csrf_headers(me))
    assert blocked.status_code == 429 and blocked.headers["retry-after"]


# -- the personal privacy cap ----------------------------------------------------------------------------------

def patch_me(client: TestClient, body: object):
    return client.patch("/v1/me", json=body, headers=csrf_headers(client))


def test_a_citizen_lowers_their_privacy_cap_and_goes_back_to_the_default(me: TestClient, engine: Engine,
                                                                         citizen: Person) -> None:
    lowered = patch_me(me, {"privacy_cap": 2.5})
    assert lowered.status_code == 200, lowered.text
    assert (lowered.json()["privacy_cap"], lowered.json()["privacy_cap_is_default"]) == (2.5, False)
    assert me.get("/v1/me").json()["privacy_cap"] == 2.5
    with session_scope(engine) as session:
        assert session.get(Citizen, citizen.citizen_id).privacy_cap == 2.5  # the column the cohort reads
    back = patch_me(me, {"privacy_cap": None})
    assert (back.json()["privacy_cap"], back.json()["privacy_cap_is_default"]) == (10.0, True)
    assert patch_me(me, {"privacy_cap": None}).status_code == 200  # unchanged: no new entry below
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT actor, subject, body FROM audit_entry WHERE action = 'privacy-cap.changed' "
                                 "ORDER BY seq")).all()
    pseudonym = me.get("/v1/me").json()["pseudonym"]
    assert [(r.actor, r.subject) for r in rows] == [(f"citizen:{pseudonym}", pseudonym)] * 2
    assert [json.loads(r.body)["details"] for r in rows] == [{"privacy_cap": 2.5, "previous": None},
                                                            {"privacy_cap": None, "previous": 2.5}]


@pytest.mark.parametrize(("body", "kind"), [
    ({"privacy_cap": 0}, "privacy-cap-out-of-range"),
    ({"privacy_cap": -1}, "privacy-cap-out-of-range"),
    ({"privacy_cap": 0.05}, "privacy-cap-out-of-range"),
    ({"privacy_cap": 10.5}, "privacy-cap-out-of-range"),  # lowering only: never above the city's default
    ({"privacy_cap": 1.0000001}, "privacy-cap-out-of-range"),  # finer than a micro-ε
    ({"privacy_cap": "2"}, "invalid-request"),
    ({"privacy_cap": True}, "invalid-request"),
    ({}, "invalid-request"),
    ({"privacy_cap": 2, "citizen_id": "someone-else"}, "invalid-request"),
])
def test_a_cap_outside_the_range_is_a_clear_422(me: TestClient, body: dict, kind: str) -> None:
    response = patch_me(me, body)
    assert response.status_code == 422 and response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == PROBLEM_BASE + kind and response.json()["detail"]
    assert me.get("/v1/me").json()["privacy_cap_is_default"] is True


def test_nan_and_infinity_are_refused(me: TestClient) -> None:
    for raw in ('{"privacy_cap": NaN}', '{"privacy_cap": Infinity}'):
        response = me.patch("/v1/me", content=raw, headers={**csrf_headers(me), "Content-Type": "application/json"})
        assert response.status_code == 422 and response.headers["content-type"] == PROBLEM


# -- guardians and their wards ---------------------------------------------------------------------------------

@pytest.fixture
def ward(engine: Engine, secrets: Secrets, clock: FixedClock, citizen: Person) -> Person:
    """A 12-year-old whom the city has linked to ``citizen`` as guardian."""
    today = clock.now().date()
    minor = make_citizen(engine, secrets, clock, born=today.replace(year=today.year - 12))
    with session_scope(engine) as session:
        Guardianships(session).establish(session.get(Citizen, citizen.citizen_id),
                                         session.get(Citizen, minor.citizen_id), basis="registry",
                                         actor="operator", now=clock.now())
    return minor


def put_ward_consent(client: TestClient, ward_ref: str, purpose: str, **body: object):
    return client.put(f"/v1/me/wards/{ward_ref}/consents/{purpose}", json=body, headers=csrf_headers(client))


def test_a_guardian_consents_for_their_ward_with_a_receipt(client: TestClient, citizen: Person, ward: Person,
                                                           policy: Policy, secrets: Secrets) -> None:
    logged_in(client, citizen)
    [listed] = client.get("/v1/me/wards").json()["wards"]
    assert listed["name"] == "Habitant Test" and listed["age_band"] == "under-15"
    assert ward.email not in json.dumps(listed) and secrets.pseudonym(ward.citizen_id or "") not in json.dumps(listed)
    purpose = plain_purpose(policy)
    given = put_ward_consent(client, listed["ward_ref"], purpose, state="given")
    assert given.status_code == 200, given.text
    record = given.json()["record"]
    assert (record["state"], record["expressed_by"], record["method"]) == ("given", "guardian", "guardian")
    payload = verify_receipt(given.json()["receipt"], client.get("/.well-known/jwks.json").json())
    assert payload["subject"] == {"pseudonym": secrets.pseudonym(ward.citizen_id or ""), "expressed_by": "guardian",
                                  "guardian_pseudonym": secrets.pseudonym(citizen.citizen_id or "")}
    again = client.get(f"/v1/me/wards/{listed['ward_ref']}").json()
    assert next(c for c in again["consents"] if c["purpose_id"] == purpose)["counts"]
    # The guardian's own consents are untouched; the ward sees the record given for them.
    assert next(c for c in client.get("/v1/me/consents").json()["consents"] if c["purpose_id"] == purpose)[
        "state"] == "requested"
    assert [g["role"] for g in client.get("/v1/me/export").json()["guardianships"]] == ["guardian"]
    logged_in(client, ward)
    mine = next(c for c in client.get("/v1/me/consents").json()["consents"] if c["purpose_id"] == purpose)
    assert mine["record_id"] == record["id"] and mine["counts"]
    assert client.get("/v1/me/wards").json()["wards"] == []
    [link] = client.get("/v1/me/export").json()["guardianships"]
    assert (link["role"], link["link_id"], link["ended_at"]) == ("ward", listed["ward_ref"], None)


def test_another_guardians_ward_answers_like_an_unknown_one(client: TestClient, citizen: Person, ward: Person,
                                                            other_citizen: Person, policy: Policy) -> None:
    logged_in(client, citizen)
    ward_ref = client.get("/v1/me/wards").json()["wards"][0]["ward_ref"]
    logged_in(client, other_citizen)
    purpose = plain_purpose(policy)
    foreign = put_ward_consent(client, ward_ref, purpose, state="given")
    unknown = put_ward_consent(client, UNKNOWN, purpose, state="given")
    assert foreign.status_code == unknown.status_code == 404 and foreign.json() == unknown.json()
    assert client.get(f"/v1/me/wards/{ward_ref}").json() == client.get(f"/v1/me/wards/{UNKNOWN}").json()


def test_a_guardian_cannot_decide_what_the_ward_decides_alone(client: TestClient, engine: Engine, citizen: Person,
                                                              secrets: Secrets, clock: FixedClock,
                                                              policy: Policy) -> None:
    today = clock.now().date()
    sixteen = make_citizen(engine, secrets, clock, born=today.replace(year=today.year - 16))
    with session_scope(engine) as session:
        Guardianships(session).establish(session.get(Citizen, citizen.citizen_id),
                                         session.get(Citizen, sixteen.citizen_id), basis="registry",
                                         actor="operator", now=clock.now())
    logged_in(client, citizen)
    [listed] = client.get("/v1/me/wards").json()["wards"]
    alone = put_ward_consent(client, listed["ward_ref"], plain_purpose(policy), state="given")
    assert alone.status_code == 422 and alone.json()["rule"] == "guardian-not-applicable"
    # Health research asks 18: there the guardian still speaks, with the explicit confirmation.
    health = put_ward_consent(client, listed["ward_ref"], special_purpose(policy), state="given", explicit=True)
    assert health.status_code == 200 and health.json()["record"]["expressed_by"] == "guardian"


def receipt_entries(engine: Engine) -> list[tuple[str, str | None, dict]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT actor, subject, body FROM audit_entry WHERE action = 'receipt.issued' "
                                 "ORDER BY seq")).all()
    return [(r.actor, r.subject, json.loads(r.body)) for r in rows]


def test_a_guardian_fetches_the_receipt_of_a_wards_record(client: TestClient, engine: Engine, citizen: Person,
                                                           ward: Person, policy: Policy, secrets: Secrets) -> None:
    logged_in(client, citizen)
    ward_ref = client.get("/v1/me/wards").json()["wards"][0]["ward_ref"]
    record = put_ward_consent(client, ward_ref, plain_purpose(policy), state="given").json()["record"]
    before = len(receipt_entries(engine))

    again = client.get(f"/v1/me/wards/{ward_ref}/receipts/{record['id']}")
    assert again.status_code == 200, again.text
    assert again.headers["cache-control"] == "no-store"
    assert set(again.json()) == {"record", "receipt"} and again.json()["record"] == record
    payload = verify_receipt(again.json()["receipt"], client.get("/.well-known/jwks.json").json())
    assert payload["record_id"] == record["id"]
    assert payload["subject"]["pseudonym"] == secrets.pseudonym(ward.citizen_id or "")

    entries = receipt_entries(engine)
    assert len(entries) == before + 1
    actor, subject, body = entries[-1]
    assert actor == f"citizen:{secrets.pseudonym(citizen.citizen_id or '')}"
    assert subject == secrets.pseudonym(ward.citizen_id or "")
    assert body["details"]["record_id"] == record["id"]
    everything = json.dumps(entries)
    assert citizen.email not in everything and ward.email not in everything


def test_a_wards_receipt_needs_the_link_in_force_and_the_wards_own_record(
        client: TestClient, engine: Engine, citizen: Person, ward: Person, other_citizen: Person, policy: Policy,
        secrets: Secrets, clock: FixedClock) -> None:
    purpose = plain_purpose(policy)
    logged_in(client, other_citizen)
    theirs = put_consent(client, purpose, state="given").json()["record"]["id"]
    logged_in(client, citizen)
    mine = put_consent(client, purpose, state="given").json()["record"]["id"]
    ward_ref = client.get("/v1/me/wards").json()["wards"][0]["ward_ref"]
    record = put_ward_consent(client, ward_ref, purpose, state="given").json()["record"]["id"]

    unknown = client.get(f"/v1/me/wards/{ward_ref}/receipts/{UNKNOWN}")
    assert unknown.status_code == 404 and unknown.headers["content-type"] == PROBLEM
    for foreign in (theirs, mine):  # another citizen's record, the guardian's own included
        answer = client.get(f"/v1/me/wards/{ward_ref}/receipts/{foreign}")
        assert answer.status_code == 404 and answer.json() == unknown.json()

    no_ward = client.get(f"/v1/me/wards/{UNKNOWN}/receipts/{record}").json()
    assert no_ward == client.get(f"/v1/me/wards/{UNKNOWN}").json()
    logged_in(client, other_citizen)  # an adult the ward is not linked to
    unlinked = client.get(f"/v1/me/wards/{ward_ref}/receipts/{record}")
    assert unlinked.status_code == 404 and unlinked.json() == no_ward

    with session_scope(engine) as session:
        Guardianships(session).end(session.get(Citizen, citizen.citizen_id), session.get(Citizen, ward.citizen_id),
                                   actor="operator", now=clock.now())
    logged_in(client, citizen)
    ended = client.get(f"/v1/me/wards/{ward_ref}/receipts/{record}")
    assert ended.status_code == 404 and ended.json() == no_ward
    with engine.connect() as conn:
        refusals = conn.execute(text("SELECT body FROM audit_entry WHERE action = 'authorization.failed'")).all()
    refused = [r.body for r in refusals if json.loads(r.body)["details"].get("resource") == "consent-receipt"]
    assert len(refused) == 6  # each refusal above, committed although it answered an error
    assert all(record not in body and ward_ref not in body for body in refused)  # the ids asked for stay out
