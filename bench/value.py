"""``GET /v1/me/value`` for one citizen of the demo city with 10,000 releases in history, next to a single-row
primary-key SELECT on the same database, in the same run.

    .venv/bin/python bench/value.py                          # 1,000,000 citizens (seeding takes minutes)
    .venv/bin/python bench/value.py --citizens 100000        # quicker
    .venv/bin/python bench/value.py --data-dir var/bench     # keep (and reuse) the seeded database

Setup (untimed): ``seed_demo`` fills a freshly migrated SQLite database (vault records per citizen are kept
low by default, ``--records-per-citizen 1``: the ledger never reads the vault). Then 10,000 releases are
spread over the past 400 days across every (purpose, dataset) of the policy, through the privacy package's
own counter (:meth:`broker.privacy.counters.Counters.advance`) and its ``Release`` rows, exactly as a query
leaves them, but without running 10,000 DP queries. The citizen is the demo's Camille, who gave every consent
purpose about 200 days ago, so her ledger spans many months and thousands of releases.

Timed: the whole HTTP request through the app in-process (``TestClient``: routing, session cookie lookup,
the ledger, JSON), and ``SELECT * FROM citizen WHERE id = ?`` through the same engine. Medians of ``--repeat``.
For scale, also printed: the same ledger called directly (no HTTP) and ``GET /healthz`` (the HTTP floor).
Target: median ``GET /v1/me/value`` <= 50 ms.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import text  # noqa: E402

from broker.app import create_app  # noqa: E402
from broker.commands.db import upgrade_runtime  # noqa: E402
from broker.db import session_scope  # noqa: E402
from broker.demo import seed_demo  # noqa: E402
from broker.exchange.value import CitizenValue  # noqa: E402
from broker.privacy.counters import Counters  # noqa: E402
from broker.privacy.models import Release  # noqa: E402
from broker.runtime import Runtime  # noqa: E402
from broker.settings import Settings  # noqa: E402

BASE = "http://127.0.0.1:8000"
HIDDEN = re.compile(r'name="csrf_token" value="([^"]+)"')
BATCH = 1_000


def add_releases(runtime: Runtime, count: int, days: int, seed: int) -> None:
    """``count`` releases, oldest first, over the past ``days``, round the policy's (purpose, dataset) pairs."""
    pairs = [(p, use.dataset) for p in runtime.policy.purposes for use in p.datasets]
    rng = random.Random(seed)
    now = datetime.now(UTC)
    moments = sorted(now - timedelta(seconds=rng.uniform(0, days * 86_400)) for _ in range(count))
    services = {p.id: next((s.id for s in runtime.policy.services if p.id in s.purposes), "bench")
                for p, _ in pairs}
    for start in range(0, count, BATCH):
        with session_scope(runtime.engine) as session:
            counters = Counters(session)
            for i, moment in enumerate(moments[start:start + BATCH], start):
                purpose, dataset = pairs[i % len(pairs)]
                counter = counters.advance(purpose.id, dataset, 10_000, moment)
                session.add(Release(
                    id=str(uuid.uuid4()), cache_key=uuid.uuid4().hex, service_id=services[purpose.id],
                    purpose_id=purpose.id, purpose_version=purpose.version, dataset_id=dataset,
                    period=str(moment.year), spec='{"statistic":"count"}', epsilon_micro=10_000,
                    results='[{"group":{},"value":1000,"ci95":[990,1010],"suppressed":false}]', cohort_size=1000,
                    audit_index=0, released_at=counter.released_at, counter_epsilon_micro=counter.epsilon_micro,
                    counter_releases=counter.releases))


def login(client: TestClient, email: str, password: str) -> None:
    page = client.get("/login")
    token = HIDDEN.search(page.text)
    if token is None:
        raise SystemExit("no login form")
    done = client.post("/login", data={"email": email, "password": password, "csrf_token": token.group(1)},
                       headers={"Origin": BASE}, follow_redirects=False)
    if done.status_code != 303:
        raise SystemExit(f"login failed: {done.status_code} {done.text}")


def timed(call: object, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()  # type: ignore[operator]
        out.append((time.perf_counter() - started) * 1000)
    return out


def run(data_dir: Path, citizens: int, records: float, releases: int, repeat: int, seed: int) -> None:
    settings = Settings(data_dir=data_dir, policy_dir=ROOT / "policies")
    runtime = Runtime.from_settings(settings)
    upgrade_runtime(runtime)
    started = time.perf_counter()
    credentials = seed_demo(runtime, citizens=citizens, seed=seed, records_per_citizen=records)
    with session_scope(runtime.engine) as session:
        present = session.execute(text("SELECT count(*) FROM privacy_release")).scalar_one()
        citizen_count = session.execute(text("SELECT count(*) FROM citizen")).scalar_one()
    if present < releases:
        add_releases(runtime, releases - present, 400, seed)
    print(f"setup {time.perf_counter() - started:.1f} s: {citizen_count:,} citizens, {releases:,} releases",
          flush=True)

    person = credentials.citizens[0]
    with session_scope(runtime.engine) as session:
        account = session.execute(text("SELECT citizen_id FROM account WHERE email_index = :i"),
                                  {"i": runtime.secrets.email_index(person.email)}).scalar_one()
    citizen_id = str(account)
    app = create_app(runtime=runtime, audit_integrator=False)
    with TestClient(app, base_url=BASE, client=("127.0.0.1", 50000)) as client:
        login(client, person.email, person.password)
        first = client.get("/v1/me/value")
        if first.status_code != 200:
            raise SystemExit(f"GET /v1/me/value: {first.status_code} {first.text}")
        body = first.json()
        for _ in range(5):  # warm caches on both sides alike
            client.get("/v1/me/value")
        value_ms = timed(lambda: client.get("/v1/me/value"), repeat)
        health_ms = timed(lambda: client.get("/healthz"), repeat)

    def ledger_alone() -> None:
        with session_scope(runtime.engine) as session:  # a session per call, as the route has
            CitizenValue(session, runtime.policy).view(citizen_id, runtime.clock.now())

    domain_ms = timed(ledger_alone, repeat)

    with runtime.engine.connect() as conn:
        stmt = text("SELECT * FROM citizen WHERE id = :id")
        for _ in range(5):
            conn.execute(stmt, {"id": citizen_id}).one()
        pk_ms = timed(lambda: conn.execute(stmt, {"id": citizen_id}).one(), repeat)
    runtime.dispose()

    value, pk = statistics.median(value_ms), statistics.median(pk_ms)
    print(f"\nGET /v1/me/value, SQLite, {citizen_count:,} citizens, {releases:,} releases in history; "
          f"citizen {person.email}: {body['releases']:,} releases contributed to over {len(body['months'])} "
          f"months, {len(body['purposes'])} purposes, total {body['total']} {body['currency']}")
    print(f"  GET /v1/me/value (HTTP, in-process)   median {value:8.2f} ms   p95 "
          f"{statistics.quantiles(value_ms, n=20)[-1]:8.2f} ms   (n={repeat})")
    print(f"  of which the ledger alone (domain)    median {statistics.median(domain_ms):8.2f} ms")
    print(f"  GET /healthz (HTTP floor, one query)  median {statistics.median(health_ms):8.2f} ms")
    print(f"  single-row PK SELECT on citizen       median {pk:8.3f} ms   p95 "
          f"{statistics.quantiles(pk_ms, n=20)[-1]:8.3f} ms")
    print(f"  ratio                                 {value / pk:8.0f} x   target <= 50 ms: "
          f"{'met' if value <= 50 else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--citizens", type=int, default=1_000_000)
    parser.add_argument("--records-per-citizen", type=float, default=1.0)
    parser.add_argument("--releases", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", type=Path, default=None, help="keep the database here (reused if seeded)")
    args = parser.parse_args()
    if args.data_dir is not None:
        run(args.data_dir, args.citizens, args.records_per_citizen, args.releases, args.repeat, args.seed)
        return
    with tempfile.TemporaryDirectory(prefix="bench-value-") as tmp:
        run(Path(tmp), args.citizens, args.records_per_citizen, args.releases, args.repeat, args.seed)


if __name__ == "__main__":
    main()
