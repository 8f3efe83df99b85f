"""A guardian's pages through TestClient: the dashboard's "children in my care", a ward's purposes, answers
that land on the ward's record, and what nobody else can reach."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from broker.consent.receipts import verify_receipt
from broker.keys import Secrets
from broker.timeutil import FixedClock
from tests.support.people import Person, logged_in, make_citizen
from tests.ui.conftest import born_years_ago, link, post_form

AIR, HEALTH = "air-quality-study", "public-health-study"


def _state(page: str, purpose: str) -> str:
    return page.split(f'id="state-{purpose}"')[1].split("</p>")[0]


def test_a_guardian_answers_for_their_ward_and_the_ward_sees_it(client: TestClient, citizen: Person,
                                                               ward: tuple[Person, str]) -> None:
    minor, ward_ref = ward
    logged_in(client, citizen)
    dashboard = client.get("/").text
    assert "Enfants dont j’ai la charge" in dashboard and f'href="/wards/{ward_ref}"' in dashboard
    assert minor.email not in dashboard
    page = client.get(f"/wards/{ward_ref}")
    assert page.status_code == 200 and "Finalités pour Habitant Test" in page.text
    assert minor.email not in page.text and "J’accepte pour Habitant Test" in page.text

    given = post_form(client, f"/wards/{ward_ref}", f"/wards/{ward_ref}/purposes/{AIR}", state="given")
    assert given.status_code == 303 and given.headers["location"] == f"/wards/{ward_ref}?done=given#purpose-{AIR}"
    after = client.get(given.headers["location"]).text
    assert "représentant légal" in after and "donné" in _state(after, AIR)
    assert "donné" not in _state(client.get("/purposes").text, AIR)  # the guardian's own answer is untouched

    withdrawn = post_form(client, f"/wards/{ward_ref}", f"/wards/{ward_ref}/purposes/{AIR}", state="withdrawn")
    assert withdrawn.headers["location"].startswith(f"/wards/{ward_ref}?done=withdrawn")

    logged_in(client, minor)
    receipts = client.get("/receipts").text
    rows = re.findall(r'<tr class="receipt-row" data-state="(\w+)" data-purpose="([\w-]+)">(.*?)</tr>', receipts,
                      re.S)
    assert [(state, purpose) for state, purpose, _ in rows] == [("withdrawn", AIR), ("given", AIR)]
    assert all("par un représentant légal" in cells for _, _, cells in rows)  # both expressed by the guardian
    assert "Enfants dont j’ai la charge" not in client.get("/").text


def test_special_categories_need_the_guardians_explicit_box(client: TestClient, citizen: Person,
                                                            ward: tuple[Person, str]) -> None:
    _, ward_ref = ward
    logged_in(client, citizen)
    page, action = f"/wards/{ward_ref}", f"/wards/{ward_ref}/purposes/{HEALTH}"
    assert "error=explicit" in post_form(client, page, action, state="given").headers["location"]
    assert "done=given" in post_form(client, page, action, state="given", explicit="yes").headers["location"]


def test_purposes_the_ward_answers_alone_have_no_form(client: TestClient, engine: Engine, secrets: Secrets,
                                                      clock: FixedClock, citizen: Person) -> None:
    sixteen = make_citizen(engine, secrets, clock, born=born_years_ago(clock, 16))
    ward_ref = link(engine, citizen, sixteen, clock)
    logged_in(client, citizen)
    page = client.get(f"/wards/{ward_ref}").text
    assert f'id="alone-{AIR}"' in page and f'action="/wards/{ward_ref}/purposes/{AIR}"' not in page
    assert f'action="/wards/{ward_ref}/purposes/{HEALTH}"' in page  # 18 for health research: the guardian's
    refused = post_form(client, f"/wards/{ward_ref}", f"/wards/{ward_ref}/purposes/{AIR}", state="given")
    assert refused.headers["location"].startswith(f"/wards/{ward_ref}?error=alone")


def test_nobody_else_reaches_a_wards_page(client: TestClient, citizen: Person, other_citizen: Person,
                                          ward: tuple[Person, str]) -> None:
    minor, ward_ref = ward
    logged_in(client, other_citizen)
    assert client.get(f"/wards/{ward_ref}").status_code == 404
    assert client.get("/wards/00000000-0000-4000-8000-000000000000").status_code == 404
    foreign = post_form(client, "/purposes", f"/wards/{ward_ref}/purposes/{AIR}", state="given")
    assert foreign.status_code == 404
    logged_in(client, minor)
    assert client.get("/receipts").text.count("receipt-row") == 0  # nothing was recorded for the ward
    client.cookies.clear()
    assert client.get(f"/wards/{ward_ref}", follow_redirects=False).headers["location"].startswith("/login")


def test_the_wards_page_lists_every_answer_with_its_receipt(client: TestClient, citizen: Person,
                                                            other_citizen: Person, ward: tuple[Person, str]) -> None:
    minor, ward_ref = ward
    logged_in(client, citizen)
    assert "Aucune réponse n’a encore été enregistrée pour Habitant Test" in client.get(f"/wards/{ward_ref}").text
    post_form(client, f"/wards/{ward_ref}", f"/wards/{ward_ref}/purposes/{AIR}", state="given")
    logged_in(client, minor)
    assert post_form(client, "/purposes", f"/purposes/{AIR}", state="withdrawn").status_code == 303  # the child's

    logged_in(client, citizen)
    page = client.get(f"/wards/{ward_ref}").text
    assert 'id="receipts"' in page and "Reçus" in page
    rows = re.findall(r'<tr class="ward-receipt-row" data-state="(\w+)" data-purpose="([\w-]+)" '
                      r'data-by="(\w+)">(.*?)</tr>', page, re.S)
    assert [row[:3] for row in rows] == [("withdrawn", AIR, "self"), ("given", AIR, "guardian")]  # newest first
    assert "Habitant Test" in rows[0][3] and "<td>vous</td>" in rows[1][3]
    assert minor.email not in page
    links = re.findall(rf'href="/wards/{ward_ref}/receipts/([0-9a-f-]{{36}})"', page)
    assert len(links) == 2

    receipt = client.get(f"/wards/{ward_ref}/receipts/{links[1]}")
    assert receipt.status_code == 200 and receipt.headers["cache-control"] == "no-store"
    assert f"<code>{links[1]}</code>" in receipt.text and 'id="receipt-state">donné' in receipt.text
    assert "consentement, par son représentant légal<" in receipt.text
    assert f'href="/wards/{ward_ref}#receipts"' in receipt.text and minor.email not in receipt.text
    download = f"/wards/{ward_ref}/receipts/{links[1]}/receipt.jws"
    assert f'href="{download}"' in receipt.text
    jws = client.get(download)
    assert jws.status_code == 200 and jws.headers["content-type"] == "application/jose"
    assert f'filename="consent-receipt-{links[1]}.jws"' in jws.headers["content-disposition"]
    payload = verify_receipt(jws.text, client.get("/.well-known/jwks.json").json())
    assert (payload["record_id"], payload["state"]) == (links[1], "given")
    # The page shows the receipt it offers to download (ES256 signs afresh each time: same header and payload).
    assert jws.text.rsplit(".", 1)[0] in receipt.text

    logged_in(client, other_citizen)
    assert client.get(f"/wards/{ward_ref}/receipts/{links[1]}").status_code == 404
    assert client.get(download).status_code == 404


def test_a_receipt_not_of_the_ward_is_not_found_on_the_wards_pages(client: TestClient, citizen: Person,
                                                                   ward: tuple[Person, str]) -> None:
    _, ward_ref = ward
    logged_in(client, citizen)
    post_form(client, "/purposes", f"/purposes/{AIR}", state="given")  # the guardian's own record
    mine = re.search(r'href="/receipts/([0-9a-f-]{36})"', client.get("/receipts").text).group(1)
    for path in (f"/wards/{ward_ref}/receipts/{mine}", f"/wards/{ward_ref}/receipts/{mine}/receipt.jws",
                 "/wards/00000000-0000-4000-8000-000000000000/receipts/" + mine):
        answer = client.get(path)
        assert answer.status_code == 404 and "text/html" in answer.headers["content-type"], path
