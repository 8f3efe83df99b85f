"""``POST /v1/ingest/{dataset}`` on both databases: exact storage, per-record errors, all-or-nothing batches,
idempotent batch ids, who may write what, and the audit entry of every batch."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import select

from broker.audit.models import AuditEntry
from broker.db import session_scope
from broker.errors import PROBLEM_BASE
from broker.runtime import Runtime
from broker.timeutil import as_utc
from broker.vault.ingest import MAX_RECORDS
from broker.vault.models import IngestBatch
from tests.oauth.support import bearer
from tests.vault.conftest import CITY_SERVICE, NARROW_DATASET, NARROW_PROVIDER, PROVIDER, Vault, token_for

PROBLEM = "application/problem+json"
AIR = "air-exposure"
ENERGY = "household-energy"


def air(citizen_id: str, **fields: Any) -> dict[str, Any]:
    record = {"citizen_id": citizen_id, "day": "2026-03-01T00:00:00Z", "district": "lyon-3", "pm25": 12.34,
              "no2": 20, "outdoor_minutes": 95, "respiratory_symptoms": "none"}
    record.update(fields)
    return {k: v for k, v in record.items() if v is not ...}


def energy(citizen_id: str, **fields: Any) -> dict[str, Any]:
    record = {"citizen_id": citizen_id, "day": "2026-03-01T00:00:00Z", "district": "lyon-1", "energy_wh": 8200,
              "heating": "gas", "dwelling": "flat"}
    record.update(fields)
    return record


def batches(runtime: Runtime) -> list[IngestBatch]:
    with session_scope(runtime.engine) as session:
        return list(session.exec(select(IngestBatch)).all())


def audit_entries(runtime: Runtime) -> list[AuditEntry]:
    with session_scope(runtime.engine) as session:
        return list(session.exec(select(AuditEntry).where(AuditEntry.action == "ingest")
                                 .order_by(AuditEntry.seq)).all())


# -- storing --------------------------------------------------------------------------------------------------
def test_a_valid_batch_stores_exactly_the_fixed_point_values(vault: Vault, runtime: Runtime) -> None:
    a, b, c = vault.citizens(3)
    # Raw JSON, so the test controls every digit the broker receives.
    records = [
        {"citizen_id": a, "day": "2026-03-01T08:00:00+02:00", "district": "lyon-1", "pm25": 12.34, "no2": "0.3",
         "outdoor_minutes": 95, "respiratory_symptoms": "mild"},
        {"citizen_id": b.upper(), "day": "2026-03-01T00:00:00.5Z", "district": "lyon-9", "pm25": 0.1, "no2": 0.2,
         "outdoor_minutes": 0, "respiratory_symptoms": None},
        # Out of the declared bounds: stored as given, clamping is the query's job.
        {"citizen_id": c, "day": "2026-03-01 23:59:59-05:00", "pm25": 999.99, "no2": 1.10, "outdoor_minutes": 5000},
        {"citizen_id": c, "day": "2026-03-02T00:00:00z", "pm25": 4.35, "no2": 1E1, "outdoor_minutes": -3},
    ]
    response = vault.post_raw(AIR, json.dumps({"batch_id": "day-2026-03-01", "records": records}))
    assert response.status_code == 201, response.text
    assert response.json() == {"batch_id": "day-2026-03-01", "dataset": AIR, "accepted": 4}

    rows = vault.rows(AIR)
    assert [(r["pm25"], r["no2"], r["outdoor_minutes"]) for r in rows] == [
        (1234, 30, 95), (10, 20, 0), (99999, 110, 5000), (435, 1000, -3)]
    assert rows[1]["pm25"] + rows[1]["no2"] == 30  # 0.1 + 0.2 is exactly 0.3 here
    assert [r["pseudonym"] for r in rows] == [vault.pseudonym(x) for x in (a, b, c, c)]
    assert [as_utc(r["day"]) for r in rows] == [
        datetime(2026, 3, 1, 6, 0, tzinfo=UTC), datetime(2026, 3, 1, 0, 0, 0, 500000, tzinfo=UTC),
        datetime(2026, 3, 2, 4, 59, 59, tzinfo=UTC), datetime(2026, 3, 2, 0, 0, tzinfo=UTC)]
    assert [r["district"] for r in rows] == ["lyon-1", "lyon-9", None, None]
    assert [r["respiratory_symptoms"] for r in rows] == ["mild", None, None, None]

    (batch,) = batches(runtime)
    assert (batch.client_id, batch.dataset, batch.batch_id, batch.record_count) == (PROVIDER, AIR,
                                                                                     "day-2026-03-01", 4)
    assert as_utc(batch.received_at) == runtime.clock.now()
    assert {r["batch_id"] for r in rows} == {batch.id}
    # The vault knows citizens by pseudonym only.
    assert not any(x in json.dumps(rows, default=str) for x in (a, b, c))


def test_a_number_with_digits_a_float_would_drop_is_refused_not_rounded(vault: Vault) -> None:
    (a,) = vault.citizens(1)
    body = ('{"batch_id": "b1", "records": [{"citizen_id": "A", "day": "2026-03-01T00:00:00Z", '
            '"pm25": 12.340000000000000000001}]}').replace('"A"', f'"{a}"')
    response = vault.post_raw(AIR, body)
    assert response.status_code == 422
    assert response.json()["errors"] == [{"record": 0, "field": "pm25", "message": "has more than 2 decimal places"}]
    assert vault.rows(AIR) == []


def test_a_large_batch_is_stored_in_one_request(vault: Vault) -> None:
    citizens = vault.citizens(20)
    records = [energy(citizens[i % 20], day=f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T00:00:00Z", energy_wh=i)
               for i in range(MAX_RECORDS)]
    response = vault.post(ENERGY, records)
    assert response.status_code == 201, response.text
    rows = vault.rows(ENERGY)
    assert len(rows) == MAX_RECORDS
    assert sum(r["energy_wh"] for r in rows) == MAX_RECORDS * (MAX_RECORDS - 1) // 2


# -- refusing ---------------------------------------------------------------------------------------------------
def test_every_invalid_record_is_reported_by_index_and_field_and_nothing_is_stored(vault: Vault,
                                                                                    runtime: Runtime) -> None:
    good, erased = vault.citizens(2, erased=1)
    unknown = str(uuid.uuid4())
    records: list[Any] = [
        air(good),                                            # 0: valid
        air(good, colour="blue"),                             # 1: unknown field
        air(good, outdoor_minutes="95"),                      # 2: wrong type
        air(good, outdoor_minutes=95.5, no2=True),            # 3: wrong types
        air(good, pm25=12.345),                               # 4: too many decimals
        air(good, respiratory_symptoms="terrible"),           # 5: unknown category
        air(good, district="paris-1"),                        # 6: outside the district domain
        air(unknown),                                         # 7: unknown citizen
        air(erased),                                          # 8: erased citizen
        air(good, day=...),                                   # 9: time field missing
        air(good, day="2026-03-01T00:00:00"),                 # 10: no time zone
        air("not-a-uuid"),                                    # 11: citizen id malformed
        air(good, **{"jean.dupont@example.org": 1}),          # 12: a key that is not name-shaped
        "not an object",                                      # 13
        air(good, pm25="12.3e1"),                             # 14: decimal strings are plain notation
        air(good, day=None),                                  # 15: time field null
        air(good, day="2026-02-30T00:00:00Z"),                # 16: no such day
        air(good, day="0001-01-01T00:00:00+01:00"),           # 17: before year 1 in UTC
    ]
    response = vault.post(AIR, records)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == PROBLEM_BASE + "invalid-records"
    found = {(e["record"], e["field"]) for e in problem["errors"]}
    assert found == {
        (1, "colour"), (2, "outdoor_minutes"), (3, "outdoor_minutes"), (3, "no2"), (4, "pm25"),
        (5, "respiratory_symptoms"), (6, "district"), (7, "citizen_id"), (8, "citizen_id"), (9, "day"),
        (10, "day"), (11, "citizen_id"), (12, None), (13, None), (14, "pm25"), (15, "day"), (16, "day"),
        (17, "day")}
    messages = {(e["record"], e["field"]): e["message"] for e in problem["errors"]}
    assert messages[(7, "citizen_id")] == "no such citizen"
    assert messages[(8, "citizen_id")] == "this citizen's data has been erased"
    assert messages[(4, "pm25")] == "has more than 2 decimal places"
    assert problem["invalid_records"] == 17
    assert [e["record"] for e in problem["errors"]] == sorted(e["record"] for e in problem["errors"])
    # Neither the values nor the citizens come back in the answer.
    for secret in (good, erased, unknown, "12.345", "terrible", "paris-1", "blue", "jean.dupont"):
        assert secret not in response.text
    assert vault.rows(AIR) == []
    assert batches(runtime) == []


def test_one_bad_record_among_many_stores_nothing(vault: Vault) -> None:
    citizens = vault.citizens(5)
    records = [energy(citizens[i % 5], energy_wh=i) for i in range(2_000)]
    records[1_234]["heating"] = "coal"
    response = vault.post(ENERGY, records)
    assert response.status_code == 422
    assert response.json()["errors"] == [{"record": 1234, "field": "heating",
                                          "message": "not one of the declared categories"}]
    assert vault.rows(ENERGY) == []


def test_a_batch_over_the_limit_is_refused(vault: Vault) -> None:
    (a,) = vault.citizens(1)
    response = vault.post(ENERGY, [energy(a)] * (MAX_RECORDS + 1))
    assert response.status_code == 413
    assert response.json()["type"] == PROBLEM_BASE + "batch-too-large"
    assert vault.rows(ENERGY) == []


def test_a_malformed_envelope_is_refused(vault: Vault) -> None:
    (a,) = vault.citizens(1)
    cases = [
        '{"batch_id": "b", "records": []}',
        '{"records": [{}]}',
        '{"batch_id": "has spaces", "records": [{}]}',
        '{"batch_id": "b", "records": {}}',
        '{"batch_id": "b", "records": [{}], "dataset": "x"}',
        '[]',
        '{"batch_id": "b", "records": [',
        '{"batch_id": "b", "records": [{"citizen_id": "A", "day": "2026-03-01T00:00:00Z", "pm25": NaN}]}'
        .replace('"A"', f'"{a}"'),
    ]
    for body in cases:
        response = vault.post_raw(AIR, body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["type"] == PROBLEM_BASE + "invalid-batch", body
    response = vault.api.post(f"/v1/ingest/{AIR}", content=b"batch_id=b",
                              headers={**vault.headers, "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415
    assert vault.rows(AIR) == []


# -- idempotency ------------------------------------------------------------------------------------------------
def test_the_same_batch_again_is_answered_from_the_first_and_stores_nothing(vault: Vault, runtime: Runtime) -> None:
    a, b = vault.citizens(2)
    first = vault.post_raw(AIR, ('{"batch_id": "b-7", "records": [{"citizen_id": "A", "day": "2026-03-01T00:00:00Z",'
                                 ' "pm25": 12.3}, {"citizen_id": "B", "day": "2026-03-01T00:00:00Z"}]}')
                           .replace('"A"', f'"{a}"').replace('"B"', f'"{b}"'))
    assert first.status_code == 201
    # The same batch written differently: key order, spacing, 12.30 for 12.3.
    again = vault.post_raw(AIR, ('{"records": [{"pm25": 12.30, "day": "2026-03-01T00:00:00Z", "citizen_id": "A"},'
                                 '{"citizen_id":"B","day":"2026-03-01T00:00:00Z"}], "batch_id": "b-7"}')
                           .replace('"A"', f'"{a}"').replace('"B"', f'"{b}"'))
    assert again.status_code == 200, again.text
    assert again.json() == first.json() == {"batch_id": "b-7", "dataset": AIR, "accepted": 2}
    assert len(vault.rows(AIR)) == 2
    assert len(batches(runtime)) == 1


def test_a_different_batch_under_a_used_id_is_a_conflict(vault: Vault, runtime: Runtime) -> None:
    (a,) = vault.citizens(1)
    assert vault.post(AIR, [air(a)], batch_id="b-8").status_code == 201
    response = vault.post(AIR, [air(a, pm25=12.35)], batch_id="b-8")
    assert response.status_code == 409
    assert response.json()["type"] == PROBLEM_BASE + "batch-conflict"
    assert [r["pm25"] for r in vault.rows(AIR)] == [1234]
    # The id is per dataset: another dataset may use it.
    assert vault.post(ENERGY, [energy(a)], batch_id="b-8").status_code == 201
    assert len(batches(runtime)) == 2


def test_a_refused_batch_may_be_corrected_and_sent_again_under_its_id(vault: Vault) -> None:
    (a,) = vault.citizens(1)
    assert vault.post(AIR, [air(a, pm25=1.234)], batch_id="b-9").status_code == 422
    assert vault.post(AIR, [air(a, pm25=1.23)], batch_id="b-9").status_code == 201
    assert [r["pm25"] for r in vault.rows(AIR)] == [123]


def test_a_replay_is_answered_even_after_its_citizen_was_erased(vault: Vault, runtime: Runtime) -> None:
    (a,) = vault.citizens(1)
    assert vault.post(AIR, [air(a)], batch_id="b-10").status_code == 201
    with session_scope(runtime.engine) as session:
        from broker.identity.citizens import CitizenService
        from broker.rights import erase_citizen

        erase_citizen(session, runtime.policy, CitizenService(session, runtime.secrets).get(a), runtime.clock.now())
    response = vault.post(AIR, [air(a)], batch_id="b-10")
    assert response.status_code == 200
    assert vault.rows(AIR) == []  # the replay does not bring the erased records back


# -- who may write what -----------------------------------------------------------------------------------------
def test_a_service_without_the_ingest_role_is_refused(vault: Vault, api: TestClient, runtime: Runtime,
                                                      registered: dict[str, Any]) -> None:
    (a,) = vault.citizens(1)
    token = token_for(api, runtime, registered, CITY_SERVICE)
    response = vault.post(AIR, [air(a)], headers=bearer(token))
    assert response.status_code == 403
    assert response.json()["type"] == PROBLEM_BASE + "insufficient-scope"
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert vault.api.post(f"/v1/ingest/{AIR}", json={}).status_code == 401
    assert vault.rows(AIR) == []


def test_a_provider_writes_only_the_datasets_the_policy_lists_for_it(vault: Vault, api: TestClient,
                                                                     runtime: Runtime,
                                                                     registered: dict[str, Any]) -> None:
    (a,) = vault.citizens(1)
    headers = bearer(token_for(api, runtime, registered, NARROW_PROVIDER, scope="ingest"))
    response = vault.post(ENERGY, [energy(a)], headers=headers)
    assert response.status_code == 403
    assert response.json()["type"] == PROBLEM_BASE + "ingest-not-allowed"
    assert vault.rows(ENERGY) == []
    parking = {"citizen_id": a, "started_at": "2026-03-01T18:00:00+01:00", "district": "lyon-2",
               "zone": "street_red", "vehicle": "car", "duration_min": 45}
    assert vault.post(NARROW_DATASET, [parking], headers=headers).status_code == 201


def test_an_unknown_dataset_is_404(vault: Vault) -> None:
    (a,) = vault.citizens(1)
    response = vault.post("no-such-dataset", [air(a)])
    assert response.status_code == 404
    assert response.json()["type"] == PROBLEM_BASE + "unknown-dataset"


# -- audit -----------------------------------------------------------------------------------------------------
def test_every_batch_is_audited_without_citizens_or_values(vault: Vault, runtime: Runtime) -> None:
    good, erased = vault.citizens(2, erased=1)
    assert vault.post(AIR, [air(good), air(good, pm25=77.77)], batch_id="ok-1").status_code == 201
    assert vault.post(AIR, [air(good), air(erased, pm25=66.66)], batch_id="bad-1").status_code == 422
    assert vault.post(AIR, [air(good), air(good, pm25=77.77)], batch_id="ok-1").status_code == 200
    assert vault.post(AIR, [air(good)], batch_id="ok-1").status_code == 409
    assert vault.post("no-such-dataset", [air(good)], batch_id="nope").status_code == 404

    entries = audit_entries(runtime)
    assert [(e.actor, e.dataset, e.decision) for e in entries] == [
        (f"service:{PROVIDER}", AIR, "allow"), (f"service:{PROVIDER}", AIR, "deny"),
        (f"service:{PROVIDER}", AIR, "allow"), (f"service:{PROVIDER}", AIR, "deny"),
        (f"service:{PROVIDER}", "no-such-dataset", "deny")]
    bodies = [json.loads(e.body) for e in entries]
    assert [b.get("details", {}) for b in bodies] == [
        {"batch_id": "ok-1", "records": 2}, {"batch_id": "bad-1", "records": 2, "invalid_records": 1},
        {"batch_id": "ok-1", "records": 2, "replay": True}, {"batch_id": "ok-1", "records": 1},
        {}]
    assert [b.get("reasons") for b in bodies] == [None, ["invalid-records"], None, ["batch-conflict"],
                                                  ["unknown-dataset"]]
    text = " ".join(e.body for e in entries)
    for secret in (good, erased, vault.pseudonym(good), vault.pseudonym(erased), "7777", "77.77", "66.66"):
        assert secret not in text
