"""Fixtures shared by the whole suite.

Storage tests take the ``engine`` fixture and run twice: on SQLite and on a real PostgreSQL (a throwaway
cluster started here, or ``BROKER_TEST_DATABASE_URL``). Each test gets a fresh database cloned from a
migrated template, so tests never see each other's rows. Without PostgreSQL on the machine the PostgreSQL
half skips loudly; with ``BROKER_REQUIRE_POSTGRES=1`` (CI) it fails instead.
"""

from __future__ import annotations

import itertools
import os
import shutil
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from broker.app import create_app
from broker.db import make_engine, session_scope
from broker.identity.accounts import Role
from broker.keys import KeyRing, Secrets, ensure_signing_key
from broker.policy import Policy, load_policy
from broker.runtime import Runtime
from broker.schema import upgrade_all
from broker.settings import Settings
from broker.timeutil import FixedClock
from tests.support.oidc_provider import OidcTestProvider
from tests.support.people import Person, make_citizen, make_staff
from tests.support.pgcluster import PgCluster, find_pg_bin

ROOT = Path(__file__).resolve().parent.parent
POLICY_DIR = ROOT / "policies"
REQUIRE_POSTGRES = os.environ.get("BROKER_REQUIRE_POSTGRES") == "1"
_counter = itertools.count()


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy(POLICY_DIR)


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str | None]:
    """URL of a PostgreSQL maintenance database, or None when the machine has none (and it's allowed)."""
    given = os.environ.get("BROKER_TEST_DATABASE_URL")
    if given:
        yield given
        return
    bin_dir = find_pg_bin()
    if bin_dir is None:
        if REQUIRE_POSTGRES:
            pytest.fail("BROKER_REQUIRE_POSTGRES=1 but no initdb found on this machine")
        warnings.warn("PostgreSQL not found: PostgreSQL storage tests are SKIPPED on this machine", stacklevel=1)
        yield None
        return
    cluster = PgCluster(bin_dir)
    cluster.start()
    try:
        yield cluster.url()
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory, policy: Policy) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade_all(engine, policy)
    engine.dispose()  # the last connection to close checkpoints the WAL into the main file
    assert not path.with_name(path.name + "-wal").exists()
    return path


@pytest.fixture(scope="session")
def _postgres_template(postgres_server_url: str | None, policy: Policy) -> str | None:
    if postgres_server_url is None:
        return None
    admin = make_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("DROP DATABASE IF EXISTS broker_template"))
        conn.execute(text("CREATE DATABASE broker_template"))
    admin.dispose()
    url = make_url(postgres_server_url).set(database="broker_template").render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade_all(engine, policy)
    engine.dispose()
    return postgres_server_url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database for one test, on each engine in turn."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("_sqlite_template")
        target = tmp_path / "broker.db"
        shutil.copyfile(template, target)
        yield f"sqlite:///{target}"
        return
    server = request.getfixturevalue("_postgres_template")
    if server is None:
        pytest.skip("PostgreSQL not available on this machine (set BROKER_REQUIRE_POSTGRES=1 to fail instead)")
    name = f"t_{os.getpid()}_{next(_counter)}"
    admin = make_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE broker_template'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, policy_dir=POLICY_DIR)


@pytest.fixture
def secrets(settings: Settings) -> Secrets:
    return Secrets.from_settings(settings)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.resolved_database_url())
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 3, 2, 9, 30, tzinfo=UTC))


@pytest.fixture
def keyring(engine: Engine, secrets: Secrets, clock: FixedClock) -> KeyRing:
    with session_scope(engine) as session:
        ensure_signing_key(session, secrets, clock.now())
    with session_scope(engine) as session:
        return KeyRing.load(session, secrets)


@pytest.fixture
def runtime(settings: Settings, clock: FixedClock, keyring: KeyRing) -> Iterator[Runtime]:
    runtime = Runtime.from_settings(settings, clock=clock)
    yield runtime
    runtime.dispose()


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    # The peer is loopback, as for a local client: plain http is only allowed there (broker.oauth.transport).
    with TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1:8000",
                    client=("127.0.0.1", 50000)) as client:
        yield client


# -- people with portal accounts (tests/support/people.py) -------------------------------------------------

@pytest.fixture
def citizen(engine: Engine, secrets: Secrets, clock: FixedClock) -> Person:
    return make_citizen(engine, secrets, clock)


@pytest.fixture
def other_citizen(engine: Engine, secrets: Secrets, clock: FixedClock) -> Person:
    return make_citizen(engine, secrets, clock)


@pytest.fixture
def auditor(engine: Engine, secrets: Secrets, clock: FixedClock) -> Person:
    return make_staff(engine, secrets, clock, Role.auditor)


@pytest.fixture
def admin(engine: Engine, secrets: Secrets, clock: FixedClock) -> Person:
    return make_staff(engine, secrets, clock, Role.admin)


# The city's OpenID provider, for the portal's OIDC login: one server per session, reset around each test.
@pytest.fixture(scope="session")
def _oidc_server() -> Iterator[OidcTestProvider]:
    provider = OidcTestProvider().start()
    yield provider
    provider.stop()


@pytest.fixture
def oidc_provider(_oidc_server: OidcTestProvider) -> Iterator[OidcTestProvider]:
    _oidc_server.reset()
    _oidc_server.redirect_uris = ["http://127.0.0.1:8000/login/oidc/callback"]
    yield _oidc_server
    _oidc_server.reset()
