"""The exchange over HTTP: outcome reports (own purposes only), benefits, open data and the citizen's value."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc.jwk import ECKey
from sqlmodel import Session, select

from broker.audit.models import AuditEntry
from broker.db import session_scope
from broker.identity.models import Citizen
from broker.oauth.registration import ClientRegistry
from broker.runtime import Runtime
from tests.exchange.world import AIR, ENERGY, ENERGY_DATA, World
from tests.oauth.support import access_token, bearer
from tests.support.people import logged_in, make_citizen

ENVIRONMENT = "environment-health"  # holds air-quality-study and public-health-study


@pytest.fixture
def service_key(runtime: Runtime) -> ECKey:
    """The environment service registered with a fresh key (private_key_jwt)."""
    key = ECKey.generate_key("P-256", private=True, auto_kid=True)
    with session_scope(runtime.engine) as session:
        ClientRegistry(session, runtime.policy).register(
            ENVIRONMENT, jwks=json.dumps({"keys": [key.as_dict(private=False)]}), now=runtime.clock.now())
    return key


def _token(client: TestClient, key: ECKey, runtime: Runtime) -> str:
    return access_token(client, key, ENVIRONMENT, runtime.clock)  # type: ignore[arg-type]


def outcome(purpose: str = AIR, **overrides: Any) -> dict[str, Any]:
    body = {"purpose": purpose, "metric": "hospital admissions for asthma avoided", "value": "12500.50",
            "baseline": "0", "unit": "EUR", "period": {"from": "2026-01-01", "to": "2026-02-28"},
            "evidence": "https://data.lyon.example/reports/asthma-2026.pdf", "domain": "economic"}
    body.update(overrides)
    return body


def test_an_outcome_for_a_purpose_the_service_does_not_hold_is_403(client: TestClient, service_key: ECKey,
                                                                   runtime: Runtime) -> None:
    headers = bearer(_token(client, service_key, runtime))
    refused = client.post("/v1/outcomes", json=outcome(ENERGY), headers=headers)
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["type"].endswith("/purpose-not-held")
    unknown = client.post("/v1/outcomes", json=outcome("no-such-purpose"), headers=headers)
    assert unknown.status_code == 403 and unknown.json()["type"] == refused.json()["type"]
    with Session(runtime.engine) as session:
        denials = session.exec(select(AuditEntry).where(AuditEntry.action == "outcome.reported",
                                                        AuditEntry.decision == "deny")).all()
    assert len(denials) == 2


def test_an_outcome_is_stored_audited_and_shown_in_both_frames(client: TestClient, service_key: ECKey,
                                                               runtime: Runtime) -> None:
    headers = bearer(_token(client, service_key, runtime))
    made = client.post("/v1/outcomes", json=outcome(), headers=headers)
    assert made.status_code == 201, made.text
    assert made.json()["value"] == "12500.50" and made.json()["frame"] == "economic"
    wellbeing = outcome(metric="days with PM2.5 above the WHO guideline", value="41", baseline="57", unit="days",
                        domain="health")
    assert client.post("/v1/outcomes", json=wellbeing, headers=headers).status_code == 201
    assert client.post("/v1/outcomes", json=outcome(domain="happiness"), headers=headers).status_code == 422
    assert client.post("/v1/outcomes", json=outcome(evidence="not a link"), headers=headers).status_code == 422
    assert client.post("/v1/outcomes", json=outcome()).status_code == 401

    benefits = client.get("/v1/benefits").json()
    air = next(p for p in benefits["purposes"] if p["purpose"] == AIR)
    assert len(air["outcomes"]) == 2
    assert air["frames"]["economic"]["totals"] == {"EUR": "12500.50"}
    assert air["frames"]["wellbeing"]["domains"]["health"][0]["change"] == "-16"
    assert air["cost_benefit"]["by_year"]["2026"] == {"benefit": "12500.50", "cost": "95000.00", "ratio": "0.13"}
    energy = next(p for p in benefits["purposes"] if p["purpose"] == ENERGY)
    assert energy["cost_benefit"] == {"by_year": {}, "reason": "no running cost declared"}
    with Session(runtime.engine) as session:
        entry = session.exec(select(AuditEntry).where(AuditEntry.action == "outcome.reported",
                                                      AuditEntry.decision == "allow")).first()
    assert entry is not None and entry.purpose == AIR


def test_open_data_lists_only_publishable_releases(client: TestClient, world: World) -> None:
    published = world.releases(2)
    world.releases(1, ENERGY, ENERGY_DATA)  # energy-renovation does not publish
    body = client.get("/v1/open-data").json()
    assert [r["release_id"] for r in body["releases"]] == published
    first = body["releases"][0]
    assert first["epsilon"] == 0.01 and "Laplace" in first["method"] and first["statistic"] == "count"
    assert all("ci95" in cell and "cohort_size" not in cell for cell in first["results"])
    assert "cohort_size" not in first and "service" not in first

    as_csv = client.get("/v1/open-data", params={"format": "csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert {r["release_id"] for r in rows} == set(published)
    assert {r["purpose"] for r in rows} == {AIR}
    assert all(r["epsilon"] == "0.01" and r["method"] for r in rows)
    assert client.get("/v1/open-data", headers={"Accept": "text/csv"}).text == as_csv.text
    assert client.get("/v1/open-data", params={"purpose": ENERGY}).json()["releases"] == []


def test_benefits_count_releases_epsilon_and_dp_contributors(client: TestClient, world: World) -> None:
    citizen = world.citizen()
    world.consent(citizen)
    world.releases(3)
    benefits = client.get("/v1/benefits").json()
    air = next(p for p in benefits["purposes"] if p["purpose"] == AIR)
    assert (air["releases"], air["epsilon_used"], air["contributions"]) == (3, 0.03, 3)
    assert air["returns_paid"] == {"money": "0.15"}
    assert air["contributing_citizens"]["release_id"] is not None  # a released noisy count, re-read for free
    assert benefits["city"]["releases"] == 3
    assert benefits["city"]["returns_paid"] == {"money": "0.15", "voucher": "0.00"}


def test_a_citizen_sees_their_value_and_statement(client: TestClient, runtime: Runtime, world: World,
                                                  service_key: ECKey) -> None:
    person = make_citizen(runtime.engine, runtime.secrets, runtime.clock)
    with Session(runtime.engine) as session:
        citizen = session.get(Citizen, person.citizen_id)
    assert citizen is not None
    world.consent(citizen)
    world.releases(4)
    headers = bearer(_token(client, service_key, runtime))
    assert client.post("/v1/outcomes", json=outcome(), headers=headers).status_code == 201
    client.headers.pop("Authorization", None)

    assert client.get("/v1/me/value").status_code == 401
    logged_in(client, person)
    response = client.get("/v1/me/value")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert (body["releases"], body["purposes"], body["totals"], body["total"]) == (4, [AIR], {"money": "0.20"},
                                                                                    "0.20")
    assert body["months"][0]["purposes"][0] == {"purpose": AIR, "releases": 4, "earned": {"money": "0.20"}}
    assert body["statement"]["en"].startswith("Your data contributed to 4 releases for 1 purpose; you received €0.20;")
    assert "hospital admissions" in body["statement"]["en"]
    assert body["statement"]["fr"].startswith("Vos données ont contribué à 4 publications statistiques pour 1 "
                                              "finalité ; vous avez reçu 0,20 €")
