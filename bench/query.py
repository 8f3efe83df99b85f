"""Latency of a DP mean by district through ``POST /v1/queries``, against raw SQL and SmartNoise SQL, in one run.

    .venv/bin/python bench/query.py                          # the 1,000,000-citizen demo city, SQLite and PostgreSQL
    .venv/bin/python bench/query.py --citizens 100000 --runs 7
    .venv/bin/python bench/query.py --engines sqlite --no-smartnoise

The demo city (``consent-broker demo``, ~10 records per citizen over four datasets) is built once per engine
under ``--data-dir`` and reused by later runs; PostgreSQL is a throwaway cluster of the machine's own
``initdb``/``pg_ctl`` kept in the same directory (``fsync=off``, ``shared_buffers=2GB``, ``work_mem=64MB``:
the same server for all three measurements). Before the runs the privacy state is reset (budgets, releases,
counters), so every run starts from an unspent year and the personal-cap shortcut applies (see
``broker.privacy.caps``).

Measured on the same database in the same run, interleaved one by one so that background load hits all alike:

* ``POST /v1/queries``: a mean of ``pm25`` by district on ``air-exposure`` for the air-quality study, over HTTP
  to one real uvicorn worker (``consent-broker serve``), with a token of the demo's service; client-side wall
  time of the request. Each request asks a slightly different ε (+1 micro-ε), so none is answered from the
  release cache: each is a fresh release (decide, charge, cohort, pushed-down aggregate, OpenDP, audit).
* raw SQL: ``SELECT district, avg(pm25) FROM vault_air_exposure GROUP BY district`` over all records of the
  dataset, no consent, no privacy, from this process.
* SmartNoise SQL (PostgreSQL only): ``SELECT district, AVG(pm25) FROM bench.consenting_air GROUP BY district``
  over a view of the same consenting citizens' records (the broker's own cohort statement), ``max_ids: 1``,
  run by ``smartnoise-sql`` in its own virtualenv (it pins an older OpenDP; never a broker dependency),
  created with ``python3 -m venv <dir> && <dir>/bin/pip install smartnoise-sql psycopg2-binary`` if missing.

With ``--window-days N`` both the POST and the raw SQL take only the records of the last N days of the data
(``where: {from, to}``; raw SQL ``WHERE day >= from AND day < to``): the broker then summarises the window's
records per citizen instead of reading the summaries the database keeps (:mod:`broker.vault.summaries`).

Targets: POST / raw SQL <= 1.2; SmartNoise / POST >= 2.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from broker.commands.db import upgrade_runtime  # noqa: E402
from broker.db import make_engine, session_scope  # noqa: E402
from broker.demo import seed_demo  # noqa: E402
from broker.demo.credentials import CREDENTIALS_FILE, DemoCredentials  # noqa: E402
from broker.policy import load_policy  # noqa: E402
from broker.privacy.cohort import Cohorts  # noqa: E402
from broker.runtime import Runtime  # noqa: E402
from broker.settings import Settings  # noqa: E402
from broker.vault.tables import vault_metadata  # noqa: E402
from tests.support.pgcluster import find_pg_bin  # noqa: E402

PURPOSE, DATASET, SERVICE = "air-quality-study", "air-exposure", "environment-health"
RAW_SQL = "SELECT district, avg(pm25) FROM vault_air_exposure GROUP BY district"
EPSILON = 0.1
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
PRIVACY_TABLES = ("privacy_release", "budget_account", "privacy_counter")
RATIO_TARGET, SMARTNOISE_TARGET = 1.2, 2.0
PG_OPTIONS = ("-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=2GB "
              "-c work_mem=64MB -c max_connections=50")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- PostgreSQL: a cluster kept in the data directory -------------------------------------------------------
class PgServer:
    """Like tests/support/pgcluster.py, but its data directory survives, so the city is built once."""

    def __init__(self, root: Path) -> None:
        bin_dir = find_pg_bin()
        if bin_dir is None:
            raise SystemExit("no initdb on this machine: install PostgreSQL or run with --engines sqlite")
        self.bin_dir, self.root, self.data = bin_dir, root, root / "cluster"
        self.port = free_port()
        self._as: list[str] = []
        root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            pw = pwd.getpwnam("postgres")
            os.chown(root, pw.pw_uid, pw.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, cwd=self.root)

    def start(self) -> None:
        if not self.data.exists():
            self._run(str(self.bin_dir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "broker", "-E",
                      "UTF8", "--no-sync", "--locale=C")
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 {PG_OPTIONS}"
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.root / "log"),
                  "-w", "start")

    def stop(self) -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://broker@127.0.0.1:{self.port}/{database}"

    def ensure_database(self, name: str) -> None:
        admin = make_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first():
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()


# -- the demo city ------------------------------------------------------------------------------------------
def settings_for(data_dir: Path, database_url: str | None, issuer: str) -> Settings:
    return Settings(data_dir=data_dir, database_url=database_url, policy_dir=ROOT / "policies", issuer=issuer)


def ensure_city(settings: Settings, citizens: int) -> None:
    """Seed the demo city unless this data directory already holds it."""
    runtime = Runtime.from_settings(settings)
    upgrade_runtime(runtime)
    if not (settings.data_dir / CREDENTIALS_FILE).exists():
        log(f"seeding {citizens:,} citizens into {runtime.engine.url.get_backend_name()} ({settings.data_dir}) ...")
        started = time.perf_counter()
        seed_demo(runtime, citizens=citizens,
                  progress=lambda stage, done, total: log(f"  {stage} {done:,}/{total:,}") if done == total or
                  done % 200_000 == 0 else None)
        log(f"  seeded in {time.perf_counter() - started:.0f} s")
    if runtime.engine.url.get_backend_name() == "postgresql":
        # Statistics and visibility as autovacuum leaves them on a live server, also after `db upgrade` has just
        # (re)built the vault summaries of an existing city.
        with runtime.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    runtime.engine.dispose()


def reset_privacy_state(engine: Engine) -> None:
    """An unspent year: no budget spent, no release stored (so no cache hit), counters at zero."""
    with session_scope(engine) as session:
        for table in PRIVACY_TABLES:
            session.execute(text(f"DELETE FROM {table}"))


def counts(engine: Engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        citizens = conn.execute(text("SELECT count(*) FROM citizen")).scalar_one()
        vault = ("vault_air_exposure", "vault_household_energy", "vault_trips", "vault_parking_sessions")
        records = sum(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in vault)
        air = conn.execute(text("SELECT count(*) FROM vault_air_exposure")).scalar_one()
    return citizens, records, air


# -- the broker over HTTP -----------------------------------------------------------------------------------
@contextmanager
def broker_server(settings: Settings, port: int) -> Iterator[str]:
    env = {**os.environ, "BROKER_DATA_DIR": str(settings.data_dir), "BROKER_POLICY_DIR": str(settings.policy_dir),
           "BROKER_ISSUER": settings.issuer}
    env.pop("BROKER_DATABASE_URL", None)
    if settings.database_url:
        env["BROKER_DATABASE_URL"] = settings.database_url
    server_log = (settings.data_dir / "bench-server.log").open("w")  # the worker's own log, for a failed run
    process = subprocess.Popen([sys.executable, "-m", "broker.cli", "serve", "--port", str(port)], env=env,
                               cwd=ROOT, stdout=server_log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the broker did not start")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)
        server_log.close()


def service_token(client: httpx.Client, base: str, credentials: DemoCredentials) -> str:
    demo = next(s for s in credentials.services if s.client_id == SERVICE)
    key = ECKey.import_key(demo.private_jwk)
    now = int(time.time())
    assertion = jwt.encode({"alg": "ES256", "kid": key.kid},
                           {"iss": demo.client_id, "sub": demo.client_id, "aud": base + "/oauth/token", "iat": now,
                            "exp": now + 120, "jti": secrets.token_urlsafe(16)}, key)
    response = client.post(base + "/oauth/token", data={
        "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion})
    response.raise_for_status()
    return response.json()["access_token"]


Window = tuple[datetime, datetime] | None


def last_days(engine: Engine, days: int | None) -> Window:
    """The last ``days`` days of the dataset's records, up to just after the latest one."""
    if days is None:
        return None
    table = air_table()
    with engine.connect() as conn:
        latest = conn.execute(select(func.max(table.c.day))).scalar_one()
    latest = latest if latest.tzinfo else latest.replace(tzinfo=UTC)
    return latest - timedelta(days=days), latest + timedelta(seconds=1)


@cache
def air_table() -> Any:
    policy = load_policy(ROOT / "policies")
    return vault_metadata(policy)[1][DATASET]


def raw_statement(window: Window) -> Any:
    """The baseline: the plain average over every record (of the window), no consent, no privacy."""
    if window is None:
        return text(RAW_SQL)
    table = air_table()
    return (select(table.c.district, func.avg(table.c.pm25))
            .where(table.c.day >= window[0], table.c.day < window[1]).group_by(table.c.district))


def post_query(client: httpx.Client, base: str, token: str, i: int, window: Window = None) -> Callable[[], None]:
    body: dict[str, Any] = {"purpose": PURPOSE, "dataset": DATASET, "statistic": "mean", "measure": "pm25",
                            "group_by": ["district"], "epsilon": round(EPSILON + i * 1e-6, 6)}
    if window is not None:
        body["where"] = {"from": window[0].isoformat(), "to": window[1].isoformat()}

    def run() -> None:
        response = client.post(base + "/v1/queries", json=body, headers={"Authorization": f"Bearer {token}"})
        if response.status_code != 200 or response.json()["cached"]:
            raise RuntimeError(f"POST /v1/queries: {response.status_code} {response.text[:300]}")

    return run


def timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


# -- SmartNoise SQL, in its own virtualenv ------------------------------------------------------------------
SMARTNOISE_SCRIPT = r'''
import json, sys, time
import psycopg2, snsql
from snsql import Privacy
dsn, runs, epsilon = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
metadata = {"engine": "postgres", "broker": {"bench": {"consenting_air": {
    "max_ids": 1, "row_privacy": False,
    "pseudonym": {"type": "string", "private_id": True},
    "district": {"type": "string"},
    "pm25": {"type": "int", "lower": 0, "upper": 15000}}}}}
conn = psycopg2.connect(dsn)
reader = snsql.from_connection(conn, privacy=Privacy(epsilon=epsilon, delta=1e-6), metadata=metadata)
query = "SELECT district, AVG(pm25) AS pm25 FROM bench.consenting_air GROUP BY district"
times = []
for i in range(runs + 1):
    started = time.perf_counter()
    reader.execute(query)
    if i:  # the first run warms up
        times.append(time.perf_counter() - started)
print(json.dumps(times))
'''


def smartnoise_python(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if not python.exists():
        log(f"creating {venv} for smartnoise-sql ...")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "smartnoise-sql", "psycopg2-binary"],
                       check=True)
    return python


def create_consenting_view(settings: Settings) -> None:
    """``bench.consenting_air``: the air-exposure records of the study's cohort, by the broker's own statement."""
    runtime = Runtime.from_settings(settings)
    purpose = runtime.policy.purpose(PURPOSE)
    if purpose is None:
        raise SystemExit(f"the policy has no purpose {PURPOSE}")
    with session_scope(runtime.engine) as session:
        cohort = Cohorts(session, runtime.policy, runtime.secrets).select(purpose, runtime.clock.now(), 0)
        cohort_sql = str(cohort.compile(session.get_bind(), compile_kwargs={"literal_binds": True}))
        session.execute(text("CREATE SCHEMA IF NOT EXISTS bench"))
        session.execute(text("DROP VIEW IF EXISTS bench.consenting_air"))
        session.execute(text("CREATE VIEW bench.consenting_air AS SELECT v.pseudonym, v.district, v.pm25 "
                             f"FROM vault_air_exposure v WHERE v.pseudonym IN ({cohort_sql})"))
        with_members = session.execute(cohort.with_only_columns(func.count())).scalar_one()
    runtime.engine.dispose()
    log(f"  consenting citizens of {PURPOSE}: {with_members:,}")


def smartnoise_times(python: Path, settings: Settings, runs: int) -> list[float]:
    url = make_url(settings.database_url or "")
    dsn = f"host={url.host} port={url.port} user={url.username} dbname={url.database}"
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as script:
        script.write(SMARTNOISE_SCRIPT)
    try:
        out = subprocess.run([str(python), script.name, dsn, str(runs), str(EPSILON)], check=True,
                             capture_output=True, text=True)
    finally:
        os.unlink(script.name)
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- one engine ---------------------------------------------------------------------------------------------
def bench_engine(engine_name: str, settings: Settings, runs: int, smartnoise: Path | None,
                 window_days: int | None = None) -> dict[str, Any]:
    engine = make_engine(settings.resolved_database_url())
    reset_privacy_state(engine)
    citizens, records, air = counts(engine)
    window = last_days(engine, window_days)
    statement = raw_statement(window)
    log(f"{engine_name}: {citizens:,} citizens, {records:,} vault records ({air:,} in {DATASET})"
        + (f", window {window[0]:%Y-%m-%d %H:%M} to {window[1]:%Y-%m-%d %H:%M}" if window else ""))
    port = int(make_url(settings.issuer).port or 0)
    credentials = DemoCredentials.read(settings.data_dir / CREDENTIALS_FILE)
    posts, raws = [], []
    with broker_server(settings, port) as base, httpx.Client(timeout=600) as client:
        token = service_token(client, base, credentials)
        def raw() -> None:
            # A connection of its own each time, released at once: on SQLite every transaction of the broker's
            # engine takes the write lock, which the server's next request needs.
            with engine.connect() as conn:
                conn.execute(statement).all()

        for i in range(2):  # warm up both (caches, plans, the worker's imports)
            post_query(client, base, token, 1000 + i, window)()
            raw()
        for i in range(runs):
            posts.append(timed(post_query(client, base, token, i, window)))
            raws.append(timed(raw))
            log(f"  run {i + 1}/{runs}: POST {posts[-1] * 1000:7.0f} ms   raw SQL {raws[-1] * 1000:7.0f} ms")
    engine.dispose()
    result: dict[str, Any] = {"engine": engine_name, "citizens": citizens, "records": records, "air": air,
                              "post": statistics.median(posts), "raw": statistics.median(raws), "window": window}
    if smartnoise is not None and window is None:
        create_consenting_view(settings)
        times = smartnoise_times(smartnoise, settings, runs)
        log("  SmartNoise SQL: " + ", ".join(f"{t * 1000:.0f}" for t in times) + " ms")
        result["smartnoise"] = statistics.median(times)
    return result


def report(results: list[dict[str, Any]], runs: int, load: tuple[float, float]) -> None:
    print(f"\nDP mean of pm25 by district (air-quality study), median of {runs} runs; {os.cpu_count()} CPUs, "
          f"load average before {load[0]:.2f}, after {load[1]:.2f}")
    for r in results:
        ratio = r["post"] / r["raw"]
        print(f"\n{r['engine']}: {r['citizens']:,} citizens, {r['records']:,} vault records "
              f"({r['air']:,} in {DATASET})")
        if r["window"]:
            start, end = r["window"]
            print(f"  window: records from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC")
        print(f"  POST /v1/queries (HTTP, uvicorn)  {r['post'] * 1000:9.0f} ms")
        print(f"  raw SQL avg() GROUP BY district   {r['raw'] * 1000:9.0f} ms")
        print(f"  POST / raw SQL                    {ratio:9.2f}   target <= {RATIO_TARGET}: "
              f"{'met' if ratio <= RATIO_TARGET else 'NOT MET'}")
        if "smartnoise" in r:
            speedup = r["smartnoise"] / r["post"]
            print(f"  SmartNoise SQL                    {r['smartnoise'] * 1000:9.0f} ms")
            print(f"  SmartNoise / POST                 {speedup:9.2f}   target >= {SMARTNOISE_TARGET}: "
                  f"{'met' if speedup >= SMARTNOISE_TARGET else 'NOT MET'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--citizens", type=int, default=1_000_000)
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "bench-query",
                        help="where the demo cities are built once and reused")
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--smartnoise-venv", type=Path, default=Path(tempfile.gettempdir()) / "snsql-venv")
    parser.add_argument("--no-smartnoise", action="store_true")
    parser.add_argument("--window-days", type=int, default=None,
                        help="query only the last N days of records (SmartNoise is then skipped)")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    results = []
    for name in args.engines.split(","):
        data_dir = args.data_dir / f"{name}-{args.citizens}"
        issuer = f"http://127.0.0.1:{free_port()}"
        if name == "sqlite":
            settings = settings_for(data_dir, None, issuer)
            ensure_city(settings, args.citizens)
            results.append(bench_engine(name, settings, args.runs, None, args.window_days))
            continue
        server = PgServer(data_dir / "pg")
        server.start()
        try:
            server.ensure_database("broker")
            settings = settings_for(data_dir, server.url("broker"), issuer)
            ensure_city(settings, args.citizens)
            snsql = None if args.no_smartnoise else smartnoise_python(args.smartnoise_venv)
            results.append(bench_engine(name, settings, args.runs, snsql, args.window_days))
        finally:
            server.stop()
    report(results, args.runs, (load_before, os.getloadavg()[0]))


if __name__ == "__main__":
    main()
