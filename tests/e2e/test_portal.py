"""Issue 7's "done when", in Chromium: the citizen's and the auditor's flows, with and without JavaScript,
the language switch, axe-core on every page, and a screenshot of every page."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from broker.keys import verify_compact
from tests.e2e.conftest import AXE, DemoCity, screenshot

AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
CITIZEN_PAGES = ["/", "/purposes", "/receipts", "/accesses", "/value", "/my-data", "/city"]
AUDITOR_PAGES = ["/audit", "/audit/checkpoint", "/audit/budgets"]


def _context(browser: Browser, city: DemoCity, **options: Any) -> BrowserContext:
    return browser.new_context(base_url=city.url, locale="fr-FR", viewport={"width": 1280, "height": 900},
                               accept_downloads=True, **options)


@pytest.fixture(params=[True, False], ids=["js", "no-js"])
def citizen_page(request: pytest.FixtureRequest, browser: Browser, demo_city: DemoCity) -> Iterator[Page]:
    context = _context(browser, demo_city, java_script_enabled=request.param)
    page = context.new_page()
    page.js_enabled = request.param  # type: ignore[attr-defined]
    errors: list[str] = []  # a CSP refusal (inline script or style, eval) shows up here
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    _login(page, *demo_city.login_of("citizens", "camille"))
    yield page
    context.close()
    assert not errors, errors


def _login(page: Page, email: str, password: str) -> None:
    page.goto("/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def test_a_citizen_withdraws_a_consent_and_finds_it_in_the_receipts(citizen_page: Page) -> None:
    page = citizen_page
    # With JavaScript, htmx boosts the form; without, the browser posts it: same result either way.
    purpose = "air-quality-study" if page.js_enabled else "parking-availability"  # type: ignore[attr-defined]
    page.goto("/purposes")
    if page.js_enabled:  # type: ignore[attr-defined]
        assert page.evaluate("typeof htmx") == "object"  # loaded from /static under the CSP
    card = page.locator(f"#purpose-{purpose}")
    expect(card.locator(f"#state-{purpose}")).to_contain_text("donné")
    card.get_by_role("button", name="Retirer mon consentement").click()
    expect(page.locator(".notice.ok")).to_contain_text("retiré")
    page.reload()
    expect(page.locator(f"#state-{purpose}")).to_contain_text("retiré")
    page.goto("/receipts")
    expect(page.locator(f"tr[data-purpose='{purpose}'][data-state='withdrawn']")).to_have_count(1)


def test_a_downloaded_receipt_verifies_against_the_published_keys(citizen_page: Page, demo_city: DemoCity) -> None:
    page = citizen_page
    page.goto("/receipts")
    page.locator("tr.receipt-row a").first.click()
    page.wait_for_url("**/receipts/*")
    with page.expect_download() as download:
        page.click("#download-receipt")
    token = download.value.path().read_text().strip()
    jwks = httpx.get(f"{demo_city.url}/.well-known/jwks.json").json()
    payload = verify_compact(token, jwks)
    assert payload  # an ISO 27560-style record, signed by the broker


def test_after_a_service_query_the_citizen_sees_the_access_and_the_value(
        citizen_page: Page, service_query: dict[str, Any]) -> None:
    page = citizen_page
    page.goto("/accesses")
    rows = page.locator("tr.access-row")
    expect(rows.first).to_be_visible()
    expect(page.locator("tr.access-row", has_text=f"entrée {service_query['audit_index']}")).to_have_count(1)
    expect(page.locator("tr.access-row .ok").first).to_contain_text("✓")
    page.goto("/value")
    total = page.locator("#value-total")
    expect(total).to_contain_text("€")
    assert total.inner_text().strip() != "0 €"  # the query paid Camille her share


def test_the_auditor_filters_the_log_and_sees_an_entrys_proof_verified(
        browser: Browser, demo_city: DemoCity, service_query: dict[str, Any]) -> None:
    context = _context(browser, demo_city)
    page = context.new_page()
    _login(page, *demo_city.login_of("auditors", "auditor"))
    expect(page).to_have_url(f"{demo_city.url}/audit")
    page.select_option("select[name=purpose]", service_query["purpose"])
    page.select_option("select[name=decision]", "allow")
    page.get_by_role("button", name="Filtrer").click()
    page.wait_for_url("**/audit?*purpose=*")
    rows = page.locator("tr.entry-row")
    expect(rows.first).to_be_visible()
    for text in rows.all_inner_texts():
        assert service_query["purpose"] in text
    export = page.get_by_role("link", name="CSV").get_attribute("href")
    assert export is not None and f"purpose={service_query['purpose']}" in export
    csv = page.request.get(export)
    assert csv.ok and csv.headers["content-type"].startswith("text/csv")
    assert all(service_query["purpose"] in line for line in csv.text().splitlines()[1:] if line)
    page.locator(f"tr.entry-row a[href='/audit/entries/{service_query['audit_index']}']").click()
    expect(page.locator("#proof-status")).to_contain_text("Preuve d’inclusion vérifiée")
    screenshot(page, "auditor-entry", docs=True)
    context.close()


def test_the_language_switch(browser: Browser, demo_city: DemoCity) -> None:
    context = _context(browser, demo_city)
    page = context.new_page()
    _login(page, *demo_city.login_of("citizens", "camille"))
    page.goto("/purposes")
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    page.get_by_role("button", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("main h1")).to_have_text("Purposes")
    page.goto("/receipts")  # the choice sticks
    expect(page.locator("main h1")).to_have_text("Receipts")
    page.get_by_role("button", name="Français").click()
    expect(page.locator("main h1")).to_have_text("Reçus")
    context.close()


def test_a_guardian_answers_for_the_child_in_their_care(citizen_page: Page, demo_city: DemoCity) -> None:
    page = citizen_page
    # Camille already agreed to air quality for Léo (the demo's history); here she answers another purpose.
    purpose = "parking-availability" if page.js_enabled else "energy-renovation"  # type: ignore[attr-defined]
    page.goto("/")
    wards = page.locator("#wards")
    expect(wards).to_contain_text("Enfants dont j’ai la charge")
    wards.get_by_role("link", name="Léo Martin").click()
    page.wait_for_url("**/wards/*")
    expect(page.locator("main h1")).to_have_text("Finalités pour Léo Martin")
    expect(page.locator("#state-air-quality-study")).to_contain_text("donné")
    card = page.locator(f"#purpose-{purpose}")
    card.get_by_role("button", name="J’accepte pour Léo Martin").click()
    expect(page.locator(".notice.ok")).to_contain_text("représentant légal")
    page.reload()
    expect(page.locator(f"#state-{purpose}")).to_contain_text("donné")
    expect(page.locator(f"#state-{purpose}")).to_contain_text("donné par un représentant légal")
    # The answer is the newest of Léo's receipts, expressed by Camille; its receipt downloads and verifies.
    newest = page.locator("#receipts tr.ward-receipt-row").first
    expect(newest).to_have_attribute("data-purpose", purpose)
    expect(newest).to_have_attribute("data-state", "given")
    expect(newest).to_contain_text("vous")
    newest.get_by_role("link").click()
    page.wait_for_url("**/wards/*/receipts/*")
    expect(page.locator("main h1")).to_have_text("Reçu")
    expect(page.locator("#receipt-state")).to_have_text("donné")
    with page.expect_download() as download:
        page.click("#download-receipt")
    payload = verify_compact(download.value.path().read_text().strip(),
                             httpx.get(f"{demo_city.url}/.well-known/jwks.json").json())
    assert (payload["purpose"]["id"], payload["state"]) == (purpose, "given")
    page.get_by_role("link", name="Finalités pour Léo Martin").click()
    page.wait_for_url("**/wards/*")
    # The child's receipts are the child's: Camille's own list has no record for this purpose from today.
    page.goto("/purposes")
    expect(page.locator(f"#state-{purpose}")).not_to_contain_text("représentant légal")


def test_a_citizen_lowers_their_privacy_cap_and_goes_back_to_the_default(citizen_page: Page) -> None:
    page = citizen_page
    page.goto("/my-data")
    expect(page.locator("#cap-now")).to_contain_text("valeur par défaut de la ville")
    page.fill("#privacy-cap", "3.5")
    page.get_by_role("button", name="Enregistrer mon plafond").click()
    expect(page.locator(".notice.ok")).to_contain_text("plafond de confidentialité est enregistré")
    expect(page.locator("#cap-now")).to_contain_text("ε = 3,50")
    expect(page.locator("#cap-now")).not_to_contain_text("valeur par défaut")
    if page.js_enabled:  # type: ignore[attr-defined]
        # The browser itself holds the bounds: above the city's default the form does not even post.
        page.fill("#privacy-cap", "50")
        page.get_by_role("button", name="Enregistrer mon plafond").click()
        assert not page.evaluate("document.querySelector('#privacy-cap').checkValidity()")
        expect(page.locator("#cap-now")).to_contain_text("ε = 3,50")
    page.get_by_role("button", name="Revenir à la valeur de la ville").click()
    expect(page.locator(".notice.ok")).to_contain_text("plafond de confidentialité est enregistré")
    expect(page.locator("#cap-now")).to_contain_text("valeur par défaut de la ville")


def _axe(page: Page) -> list[dict[str, Any]]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("(tags) => axe.run(document, {runOnly: {type: 'tag', values: tags}})", AXE_TAGS)
    return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
             "nodes": [n["target"] for n in v["nodes"]][:5]} for v in result["violations"]]


def _audit_pages(page: Page, paths: list[str], prefix: str, docs: set[str]) -> dict[str, Any]:
    failures = {}
    for path in paths:
        page.goto(path)
        name = f"{prefix}-{path.strip('/').replace('/', '-') or 'dashboard'}"
        screenshot(page, name, docs=path in docs)
        violations = _axe(page)
        if violations:
            failures[path] = violations
    return failures


def test_every_page_passes_axe_and_is_screenshotted(browser: Browser, demo_city: DemoCity,
                                                    service_query: dict[str, Any]) -> None:
    # bypass_csp: the portal's CSP rightly refuses the injected axe script; only this test lifts it.
    context = _context(browser, demo_city, bypass_csp=True)
    page = context.new_page()
    failures = _audit_pages(page, ["/city", "/login"], "public", {"/city", "/login"})
    _login(page, *demo_city.login_of("citizens", "camille"))
    failures |= _audit_pages(page, CITIZEN_PAGES, "citizen", {"/", "/purposes", "/receipts", "/accesses", "/value",
                                                             "/my-data"})
    page.goto("/")
    page.locator("#wards a").first.click()
    page.wait_for_url("**/wards/*")
    screenshot(page, "citizen-ward", docs=True)
    if violations := _axe(page):
        failures["/wards/<ref>"] = violations
    page.locator("#receipts tr.ward-receipt-row a").first.click()
    page.wait_for_url("**/wards/*/receipts/*")
    screenshot(page, "citizen-ward-receipt", docs=True)
    if violations := _axe(page):
        failures["/wards/<ref>/receipts/<id>"] = violations
    page.goto("/my-data")
    page.fill("#privacy-cap", "0.01")  # below the floor: the server's message, as a browser without JS gets it
    page.evaluate("document.querySelector('form.cap').noValidate = true")
    page.get_by_role("button", name="Enregistrer mon plafond").click()
    page.wait_for_url("**/my-data?error=cap")
    screenshot(page, "citizen-my-data-cap-refused")
    if violations := _axe(page):
        failures["/my-data?error=cap"] = violations
    page.goto("/receipts")
    page.locator("tr.receipt-row a").first.click()
    page.wait_for_url("**/receipts/*")
    screenshot(page, "citizen-receipt", docs=True)
    if violations := _axe(page):
        failures["/receipts/<id>"] = violations
    page.goto("/language?lang=en&next=/purposes")
    screenshot(page, "citizen-purposes-en", docs=True)
    if violations := _axe(page):
        failures["/purposes (en)"] = violations
    context.clear_cookies()
    _login(page, *demo_city.login_of("auditors", "auditor"))
    failures |= _audit_pages(page, AUDITOR_PAGES, "auditor", {"/audit"})
    page.goto(f"/audit/entries/{service_query['audit_index']}")
    if violations := _axe(page):
        failures["/audit/entries/<i>"] = violations
    context.close()
    assert not failures, json.dumps(failures, indent=1, ensure_ascii=False)
