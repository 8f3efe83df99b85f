"""Ingest throughput: records/s through ``POST /v1/ingest/{dataset}``, next to a bare bulk write of the
same rows into the same table, in the same run.

One uvicorn worker (``consent-broker serve``) on loopback over a freshly migrated database with a registered
provider and ``--citizens`` citizens. Each round posts one batch of ``--records`` household-energy records
(10,000 by default, the most a batch may hold) with httpx, the body encoded before the clock starts; the time
is the whole request: HTTP, token check, JSON parsing with exact decimals, validation, one look-up of the
batch's citizens, the bulk insert, the idempotency row, the audit entry and the commit.

The baseline then writes exactly the rows that request stored (read back untimed, then deleted) into the same
table with the driver's own bulk path in one transaction: sqlite3 ``executemany`` with the broker's pragmas, or
a psycopg ``COPY`` (which is also how the broker writes a batch there). The rows are deleted again, so every
round starts from the same table. Reported: the median over the rounds of each, in records/s, and their
ratio. Target: a 10,000-record batch in well under a second on SQLite.

Usage: ``python bench/ingest.py [--rounds 5] [--records 10000] [--citizens 2000] [--postgres]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from joserfc.jwk import ECKey
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.oauth import ASSERTION_TYPE, assertions, free_port, server  # noqa: E402
from broker.commands.db import upgrade_runtime  # noqa: E402
from broker.db import session_scope  # noqa: E402
from broker.identity.citizens import CitizenService  # noqa: E402
from broker.oauth.registration import ClientRegistry  # noqa: E402
from broker.runtime import Runtime  # noqa: E402
from broker.settings import Settings  # noqa: E402
from broker.vault.tables import table_name  # noqa: E402

DATASET = "household-energy"
PROVIDER = "metering-platform"
TARGET_SECONDS = 1.0


def prepare(data_dir: Path, issuer: str, database_url: str | None, citizens: int) -> tuple[Runtime, ECKey,
                                                                                              list[str]]:
    settings = Settings(data_dir=data_dir, policy_dir=ROOT / "policies", issuer=issuer, database_url=database_url)
    runtime = Runtime.from_settings(settings)
    upgrade_runtime(runtime)
    key = ECKey.generate_key("P-256", private=True, auto_kid=True)
    ids = []
    with session_scope(runtime.engine) as session:
        ClientRegistry(session, runtime.policy).register(
            PROVIDER, jwks=json.dumps({"keys": [key.as_dict(private=False)]}), now=runtime.clock.now())
        registry = CitizenService(session, runtime.secrets)
        for i in range(citizens):
            ids.append(registry.register(email=f"bench-{i}@lyon.example", name="Habitant", birth_date=None,
                                         district="lyon-1", locale="fr", now=runtime.clock.now()).id)
    return runtime, key, ids


def batch_body(citizens: list[str], records: int) -> bytes:
    first = datetime(2025, 1, 1, tzinfo=UTC)
    rows = [{"citizen_id": citizens[i % len(citizens)],
             "day": (first + timedelta(days=i // len(citizens))).isoformat(),
             "district": f"lyon-{1 + i % 9}", "energy_wh": 5000 + (i * 37) % 20000,
             "heating": ("gas", "electric", "heat_pump")[i % 3], "dwelling": ("flat", "house")[i % 2]}
            for i in range(records)]
    return json.dumps({"batch_id": f"bench-{uuid.uuid4().hex}", "records": rows}).encode()


def bare_write(runtime: Runtime, rows: list[tuple], columns: list[str]) -> float:
    """Seconds for the driver's bulk write of ``rows`` and its commit, nothing else."""
    table = table_name(DATASET)
    marks = ", ".join(["%s" if runtime.engine.dialect.name == "postgresql" else "?"] * len(columns))
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
    raw = runtime.engine.raw_connection()  # the broker's pragmas (WAL, synchronous=FULL) on SQLite
    try:
        cursor = raw.cursor()
        started = time.perf_counter()
        if runtime.engine.dialect.name == "sqlite":
            cursor.execute("BEGIN IMMEDIATE")
            cursor.executemany(sql, rows)
        else:  # one COPY, as the broker writes a batch: an executemany would fire the summary trigger per row
            with raw.driver_connection.cursor() as driver, \
                    driver.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        raw.commit()
        return time.perf_counter() - started
    finally:
        raw.close()


def stored_rows(runtime: Runtime) -> tuple[list[tuple], list[str]]:
    table = table_name(DATASET)
    with runtime.engine.begin() as conn:
        result = conn.execute(text(f"SELECT * FROM {table}"))
        names = result.keys()
        columns = [c for c in names if c != "id"]
        rows = [tuple(row._mapping[c] for c in columns) for row in result]
        conn.execute(text(f"DELETE FROM {table}"))
    return rows, columns


def run(args: argparse.Namespace, database_url: str | None) -> None:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        runtime, key, citizens = prepare(Path(tmp), issuer, database_url, args.citizens)
        env = {**os.environ, "BROKER_DATA_DIR": tmp, "BROKER_POLICY_DIR": str(ROOT / "policies"),
               "BROKER_ISSUER": issuer, "BROKER_LOG_LEVEL": "WARNING"}
        env.pop("BROKER_DATABASE_URL", None)
        if database_url:
            env["BROKER_DATABASE_URL"] = database_url
        with server(env, port), httpx.Client(base_url=issuer, timeout=120) as client:
            token = client.post("/oauth/token", data={
                "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE, "scope": "ingest",
                "client_assertion": assertions(key, PROVIDER, issuer + "/oauth/token", 1)[0]}).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            client.post(f"/v1/ingest/{DATASET}", content=batch_body(citizens, 10), headers=headers).raise_for_status()
            stored_rows(runtime)  # warm-up batch removed
            http, bare = [], []
            for _ in range(args.rounds):
                body = batch_body(citizens, args.records)
                started = time.perf_counter()
                response = client.post(f"/v1/ingest/{DATASET}", content=body, headers=headers)
                http.append(time.perf_counter() - started)
                if response.status_code != 201:
                    raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
                rows, columns = stored_rows(runtime)
                if len(rows) != args.records:
                    raise RuntimeError(f"stored {len(rows)} rows, not {args.records}")
                bare.append(bare_write(runtime, rows, columns))
                stored_rows(runtime)
        runtime.engine.dispose()
    engine = "PostgreSQL" if database_url else "SQLite"
    h, b = statistics.median(http), statistics.median(bare)
    print(f"{engine}: {args.records} records per batch, median of {args.rounds}")
    print(f"  POST /v1/ingest   {h * 1000:8.1f} ms  {args.records / h:10.0f} records/s"
          f"  (target < {TARGET_SECONDS:.0f} s: {'ok' if h < TARGET_SECONDS else 'MISSED'})")
    bare_name = "bare COPY       " if database_url else "bare executemany"
    print(f"  {bare_name}  {b * 1000:8.1f} ms  {args.records / b:10.0f} records/s")
    print(f"  ratio HTTP / bare {h / b:8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--citizens", type=int, default=2_000)
    parser.add_argument("--postgres", action="store_true", help="also on a throwaway PostgreSQL cluster")
    args = parser.parse_args()
    run(args, None)
    if args.postgres:
        from tests.support.pgcluster import PgCluster, find_pg_bin

        bin_dir = find_pg_bin()
        if bin_dir is None:
            raise SystemExit("no PostgreSQL binaries on this machine")
        cluster = PgCluster(bin_dir)
        cluster.start()
        try:
            run(args, cluster.url())
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
