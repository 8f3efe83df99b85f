"""The app skeleton: health, catalogue, JWKS, and RFC 9457 problem details for every error."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from broker.app import create_app
from broker.errors import PROBLEM_BASE
from broker.policy import Policy
from broker.schema import SchemaOutOfDate
from broker.settings import Settings

PROBLEM = "application/problem+json"


def test_health(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_unknown_path_is_a_404_problem(client: TestClient) -> None:
    response = client.get("/v1/nowhere")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == PROBLEM_BASE + "not-found"
    assert body["status"] == 404 and body["title"] and body["detail"]


def test_wrong_method_is_a_405_problem(client: TestClient) -> None:
    response = client.delete("/v1/purposes")
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == PROBLEM_BASE + "method-not-allowed"


def test_purposes_carry_legal_basis_returns_and_budgets(client: TestClient, policy: Policy) -> None:
    purposes = client.get("/v1/purposes").json()["purposes"]
    assert [p["id"] for p in purposes] == [p.id for p in policy.purposes]
    for served, declared in zip(purposes, policy.purposes, strict=True):
        assert served["legal_basis"] == declared.legal_basis
        assert served["returns"] and served["budget"]["per_query_epsilon"] > 0
        assert served["takes_consent"] == declared.takes_consent
        assert set(served["title"]) == {"fr", "en"}


def test_datasets_list_fields_and_domains(client: TestClient, policy: Policy) -> None:
    datasets = client.get("/v1/datasets").json()["datasets"]
    assert {d["id"] for d in datasets} == {d.id for d in policy.datasets}
    for dataset in datasets:
        for field in dataset["fields"]:
            if field.get("domain"):
                assert field["values"] == policy.broker.domains[field["domain"]]


def test_jwks_serves_the_public_signing_key_only(client: TestClient) -> None:
    keys = client.get("/.well-known/jwks.json").json()["keys"]
    assert len(keys) == 1
    assert keys[0]["kty"] == "EC" and keys[0]["crv"] == "P-256" and keys[0]["alg"] == "ES256"
    assert "d" not in keys[0]
    assert keys[0]["kid"]


def test_openapi_is_served(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/healthz", "/v1/purposes", "/v1/datasets", "/.well-known/jwks.json"} <= set(paths)


def test_the_app_refuses_an_out_of_date_schema(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path, policy_dir=Path(__file__).resolve().parents[2] / "policies")
    with pytest.raises(SchemaOutOfDate, match="consent-broker db upgrade"):
        create_app(settings)
