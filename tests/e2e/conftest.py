"""The portal in a real browser: one small demo city per session, served by uvicorn on a free loopback port,
driven by Playwright through the system Chromium (Playwright cannot download its own browser here).

Without /usr/bin/chromium the tests skip with a loud reason, unless ``BROKER_REQUIRE_BROWSER=1`` (CI), where
they fail instead. Screenshots go to tests/e2e/artifacts/ (ignored by git); with ``BROKER_UPDATE_SCREENSHOTS=1``
the main pages are also copied to docs/screenshots/ for the README (a plain run never rewrites tracked files).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from broker.app import create_app
from broker.commands.db import upgrade_runtime
from broker.demo import seed_demo
from broker.runtime import Runtime
from broker.settings import Settings
from tests.conftest import POLICY_DIR

CHROMIUM = Path("/usr/bin/chromium")
HERE = Path(__file__).parent
ARTIFACTS = HERE / "artifacts"
DOCS_SCREENSHOTS = HERE.parent.parent / "docs" / "screenshots"
AXE = HERE / "vendor" / "axe.min.js"
CITIZENS = 40  # besides the named demo people: enough for statistics, seeded in seconds


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if CHROMIUM.exists():
        return
    reason = (f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium) to run the portal's "
              "browser tests")
    if os.environ.get("BROKER_REQUIRE_BROWSER") == "1":
        return  # the fixture below fails instead of skipping
    browser_tests = [item for item in items if item.nodeid.startswith("tests/e2e/")]
    for item in browser_tests:
        item.add_marker(pytest.mark.skip(reason=reason))
    if browser_tests:
        print(f"\n*** SKIPPING {len(browser_tests)} browser tests: {reason} ***")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"BROKER_REQUIRE_BROWSER=1 but {CHROMIUM} is missing")
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "args": [
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class DemoCity:
    url: str
    data_dir: Path
    credentials: dict[str, Any]

    def login_of(self, kind: str, local: str) -> tuple[str, str]:
        person = next(p for p in self.credentials[kind] if p["email"].startswith(local + "@"))
        return person["email"], person["password"]


@pytest.fixture(scope="session")
def demo_city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoCity]:
    data_dir = tmp_path_factory.mktemp("e2e-city")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    settings = Settings(data_dir=data_dir, database_url=f"sqlite:///{data_dir / 'broker.db'}", policy_dir=POLICY_DIR,
                        issuer=url)
    runtime = Runtime.from_settings(settings)
    upgrade_runtime(runtime)
    seed_demo(runtime, citizens=CITIZENS, seed=42, workers=0)
    credentials = json.loads((data_dir / "demo-credentials.json").read_text())
    server = uvicorn.Server(uvicorn.Config(create_app(runtime=runtime), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="e2e-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the portal did not start")
        time.sleep(0.05)
    yield DemoCity(url=url, data_dir=data_dir, credentials=credentials)
    server.should_exit = True
    thread.join(timeout=10)
    runtime.dispose()


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any], demo_city: DemoCity) -> dict[str, Any]:
    return {**browser_context_args, "base_url": demo_city.url, "locale": "fr-FR",
            "viewport": {"width": 1280, "height": 900}}


@pytest.fixture(scope="session")
def service_query(demo_city: DemoCity) -> dict[str, Any]:
    """One statistic asked by the energy service (client_secret_basic), which Camille consented to."""
    service = next(s for s in demo_city.credentials["services"] if s.get("client_secret"))
    purpose = service["purposes"][0]
    with httpx.Client(base_url=demo_city.url, timeout=30) as http:
        token = http.post("/oauth/token", data={"grant_type": "client_credentials", "scope": f"purpose:{purpose}"},
                          auth=(service["client_id"], service["client_secret"]))
        assert token.status_code == 200, token.text
        answer = http.post("/v1/queries", headers={"Authorization": f"Bearer {token.json()['access_token']}"},
                           json={"purpose": purpose, "dataset": "household-energy", "statistic": "count",
                                 "epsilon": 0.1})
        assert answer.status_code == 200, answer.text
    return {"purpose": purpose, **answer.json()}


def screenshot(page: Any, name: str, *, docs: bool = False) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if docs and os.environ.get("BROKER_UPDATE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_SCREENSHOTS / f"{name}.png")
    return path
