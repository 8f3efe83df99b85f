"""The portal's pages through TestClient: who sees what, forms that post and redirect, CSP, languages."""

from __future__ import annotations

import base64
import json
import re

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from broker.api.csrf import CSRF_COOKIE
from broker.keys import Secrets
from broker.runtime import Runtime
from broker.timeutil import FixedClock
from tests.support.people import ORIGIN, Person, logged_in, make_citizen

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def _post(client: TestClient, path: str, **fields: str):
    page = client.get("/purposes")
    token = _TOKEN.search(page.text)
    assert token is not None and token.group(1) == client.cookies[CSRF_COOKIE]
    return client.post(path, data={"csrf_token": token.group(1), **fields}, headers={"Origin": ORIGIN},
                       follow_redirects=False)


def test_anonymous_visitors_start_on_the_city_page_under_a_strict_csp(client: TestClient) -> None:
    start = client.get("/", follow_redirects=False)
    assert start.status_code == 303 and start.headers["location"] == "/city"
    city = client.get("/city", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert city.status_code == 200 and '<html lang="en">' in city.text
    policy = city.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "unsafe-inline" not in policy
    assert "<style" not in city.text and "style=" not in city.text
    assert "Air quality" in city.text or "air" in city.text.lower()


def test_citizen_pages_need_a_login(client: TestClient) -> None:
    for path in ("/purposes", "/receipts", "/accesses", "/value", "/my-data"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == f"/login?next={path}"


def test_a_citizen_gives_then_withdraws_and_the_receipts_show_both(client: TestClient, citizen: Person) -> None:
    logged_in(client, citizen)
    assert client.get("/").status_code == 200
    given = _post(client, "/purposes/air-quality-study", state="given")
    assert given.status_code == 303 and given.headers["location"].startswith("/purposes?done=given")
    withdrawn = _post(client, "/purposes/air-quality-study", state="withdrawn")
    assert withdrawn.status_code == 303
    page = client.get("/purposes")
    assert 'id="state-air-quality-study"' in page.text
    state = page.text.split('id="state-air-quality-study"')[1].split("</p>")[0]
    assert "retiré" in state  # the test citizen's account locale is French
    receipts = client.get("/receipts").text
    assert receipts.count('data-purpose="air-quality-study"') == 2 and 'data-state="withdrawn"' in receipts
    record_id = re.search(r'href="/receipts/([0-9a-f-]{36})"', receipts).group(1)
    # How the choice was made, in words rather than the record's codes.
    assert "consentement, par la personne elle-même, sur ce portail" in client.get(f"/receipts/{record_id}").text
    jws = client.get(f"/receipts/{record_id}/receipt.jws")
    assert jws.status_code == 200 and jws.text.count(".") == 2
    payload = json.loads(base64.urlsafe_b64decode(jws.text.split(".")[1] + "=="))
    assert payload["collection_method"] == "portal"  # the portal's own form, not the JSON API


def test_special_categories_need_the_explicit_box(client: TestClient, citizen: Person) -> None:
    logged_in(client, citizen)
    refused = _post(client, "/purposes/public-health-study", state="given")
    assert "error=explicit" in refused.headers["location"]
    given = _post(client, "/purposes/public-health-study", state="given", explicit="yes")
    assert "done=given" in given.headers["location"]


def test_forms_without_the_token_are_refused(client: TestClient, citizen: Person) -> None:
    logged_in(client, citizen)
    response = client.post("/purposes/air-quality-study", data={"state": "given"}, headers={"Origin": ORIGIN})
    assert response.status_code == 403


def test_the_language_switch_sets_a_cookie_that_wins(client: TestClient, citizen: Person) -> None:
    logged_in(client, citizen)
    switched = client.get("/language?lang=en&next=/purposes", follow_redirects=False)
    assert switched.status_code == 303 and switched.headers["location"] == "/purposes"
    page = client.get("/purposes")
    assert '<html lang="en">' in page.text and "I agree" in page.text
    client.get("/language?lang=fr&next=/purposes")
    assert "J’accepte" in client.get("/purposes").text


def test_other_pages_render(client: TestClient, citizen: Person) -> None:
    logged_in(client, citizen)
    for path in ("/accesses", "/value", "/my-data", "/receipts", "/city", "/audit/checkpoint"):
        assert client.get(path).status_code == 200, path
    assert client.get("/audit").status_code == 403


def test_an_auditor_browses_the_log_and_an_entry_with_its_proof(client: TestClient, auditor: Person) -> None:
    logged_in(client, auditor)
    assert client.get("/", follow_redirects=False).headers["location"] == "/audit"
    log = client.get("/audit")
    assert log.status_code == 200 and 'id="checkpoint-status"' in log.text
    index = re.search(r'href="/audit/entries/(\d+)"', log.text).group(1)
    entry = client.get(f"/audit/entries/{index}")
    assert entry.status_code == 200 and 'id="proof-status"' in entry.text
    filtered = client.get("/audit?action=login&decision=allow")
    assert filtered.status_code == 200
    assert client.get("/audit/budgets").status_code == 200
    assert client.get("/audit/entries/999999").status_code == 404


def test_pause_all_pauses_every_consent_that_counts(client: TestClient, citizen: Person) -> None:
    logged_in(client, citizen)
    _post(client, "/purposes/air-quality-study", state="given")
    _post(client, "/purposes/parking-availability", state="given")
    paused = _post(client, "/my-data/pause")
    assert paused.status_code == 303 and paused.headers["location"] == "/my-data?done=paused"
    receipts = client.get("/receipts").text
    assert receipts.count('data-state="paused"') == 2


def test_erasure_needs_the_password_and_the_box(client: TestClient, citizen: Person) -> None:
    logged_in(client, citizen)
    unticked = _post(client, "/my-data/erase", password=citizen.password)
    assert unticked.headers["location"] == "/my-data?error=confirm"
    wrong = _post(client, "/my-data/erase", password="not the password", confirm="yes")
    assert wrong.headers["location"] == "/my-data?error=password"
    erased = _post(client, "/my-data/erase", password=citizen.password, confirm="yes")
    assert erased.status_code == 303 and erased.headers["location"] == "/city?erased=1"
    assert client.get("/purposes", follow_redirects=False).headers["location"].startswith("/login")


def test_a_minor_is_told_that_a_guardian_gives_consent(client: TestClient, engine: Engine, secrets: Secrets,
                                                      clock: FixedClock) -> None:
    minor = make_citizen(engine, secrets, clock, born=clock.now().date().replace(year=clock.now().year - 13))
    logged_in(client, minor)
    refused = _post(client, "/purposes/air-quality-study", state="given")
    assert refused.headers["location"].startswith("/purposes?error=guardian")
    assert "parent ou tuteur" in client.get(refused.headers["location"]).text


def test_after_a_version_change_the_citizen_is_prompted_and_consents_again(client: TestClient, citizen: Person,
                                                                          runtime: Runtime) -> None:
    logged_in(client, citizen)
    _post(client, "/purposes/air-quality-study", state="given")
    assert "a changé depuis votre réponse" not in client.get("/purposes").text
    purpose = runtime.policy.purpose("air-quality-study")
    assert purpose is not None
    # The city publishes a material change: the same running portal now serves version + 1.
    runtime.policy = runtime.policy.model_copy(update={"purposes": [
        p.model_copy(update={"version": p.version + 1}) if p.id == purpose.id else p
        for p in runtime.policy.purposes]})
    dashboard = client.get("/").text
    prompt = dashboard.split('id="prompt-title"')[1].split("</article>")[0]
    assert 'href="/purposes#purpose-air-quality-study"' in prompt and "a changé depuis votre réponse" in prompt
    card = client.get("/purposes").text.split('id="purpose-air-quality-study"')[1].split("</article>")[0]
    assert f"version {purpose.version + 1}" in card and "ne compte plus" in card
    assert "pas encore de réponse" in card.split('id="state-air-quality-study"')[1].split("</p>")[0]

    again = _post(client, "/purposes/air-quality-study", state="given")
    assert again.headers["location"].startswith("/purposes?done=given")
    card = client.get("/purposes").text.split('id="purpose-air-quality-study"')[1].split("</article>")[0]
    assert "ne compte plus" not in card and "donné" in card
    prompt = client.get("/").text.split('id="prompt-title"')[1].split("</article>")[0]  # other purposes await
    assert "purpose-air-quality-study" not in prompt and "a changé depuis votre réponse" not in prompt
    receipts = client.get("/receipts").text
    versions = re.findall(r'data-purpose="air-quality-study">.*?<td>(\d+)</td>\s*<td><a', receipts, re.S)
    assert versions == [str(purpose.version + 1), str(purpose.version)]  # newest first
