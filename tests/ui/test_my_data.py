"""The "my data" page through TestClient: the export link and the personal privacy cap form."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from broker.db import session_scope
from broker.identity.models import Citizen
from tests.support.people import Person, logged_in
from tests.ui.conftest import post_form

CAP = "/my-data/privacy-cap"


def test_the_export_link_downloads_my_data_as_json(client: TestClient, citizen: Person) -> None:
    logged_in(client, citizen)
    post_form(client, "/purposes", "/purposes/air-quality-study", state="given")
    page = client.get("/my-data").text
    link = re.search(r'<a href="([^"]+)" download[^>]*>', page)
    assert link is not None
    download = client.get(link.group(1))
    assert download.status_code == 200 and download.headers["content-type"].startswith("application/json")
    assert download.headers["content-disposition"].startswith("attachment;")
    document = download.json()
    assert document["citizen"]["email"] == citizen.email
    assert [r["purpose_id"] for r in document["consent_records"]] == ["air-quality-study"]


def test_the_cap_form_lowers_the_cap_and_goes_back_to_the_default(client: TestClient, engine: Engine,
                                                                  citizen: Person) -> None:
    logged_in(client, citizen)
    page = client.get("/my-data").text
    assert 'name="privacy_cap"' in page and 'max="10.0"' in page and "valeur par défaut de la ville" in page
    saved = post_form(client, "/my-data", CAP, privacy_cap="2,5", action="set")  # a French decimal comma
    assert saved.status_code == 303 and saved.headers["location"].startswith("/my-data?done=cap")
    after = client.get("/my-data").text
    assert "ε = 2,50" in after and "Votre plafond de confidentialité est enregistré" not in after
    assert "Votre plafond de confidentialité est enregistré" in client.get(saved.headers["location"]).text
    with session_scope(engine) as session:
        assert session.get(Citizen, citizen.citizen_id).privacy_cap == 2.5
    back = post_form(client, "/my-data", CAP, action="default")
    assert back.headers["location"].startswith("/my-data?done=cap")
    with session_scope(engine) as session:
        assert session.get(Citizen, citizen.citizen_id).privacy_cap is None
    assert "valeur par défaut de la ville" in client.get("/my-data").text


@pytest.mark.parametrize("value", ["0", "0.05", "11", "nan", "inf", "deux", ""])
def test_a_cap_out_of_range_is_explained_and_changes_nothing(client: TestClient, engine: Engine, citizen: Person,
                                                             value: str) -> None:
    logged_in(client, citizen)
    refused = post_form(client, "/my-data", CAP, privacy_cap=value, action="set")
    assert refused.headers["location"] == "/my-data?error=cap"
    assert "au moins 0,1" in client.get(refused.headers["location"]).text
    with session_scope(engine) as session:
        assert session.get(Citizen, citizen.citizen_id).privacy_cap is None
