"""How fast ``consent-broker demo`` seeds, next to a bare ``executemany`` of the same rows, in the same run.

    .venv/bin/python bench/seed.py                       # 100,000 citizens, 10 records each, median of 3
    .venv/bin/python bench/seed.py --citizens 1000000    # the 1M citizens / 10M records target (< 5 min)

The seeder run starts from a freshly migrated SQLite database and includes everything ``seed_demo`` does:
generating citizens, sealing their identifiers (a data key and two AES-GCM seals each), consent records with
their receipt evidence, vault records, writing them, rebuilding indexes, registering clients and accounts.

The baseline then writes exactly the rows the seeder wrote (read back from its database, untimed) into
another freshly migrated database with plain ``sqlite3``: ``executemany`` per 500,000 rows, one transaction
each, the same pragmas as the seeder's load (WAL, ``synchronous=OFF``, 1 GiB cache, foreign keys on) and the
schema's indexes left in place. Only the ``executemany`` and ``COMMIT`` calls are timed. The ratio
seeder / baseline is what to watch: it says what generation and crypto cost on top of the bare writes.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from broker.commands.db import upgrade_runtime  # noqa: E402
from broker.db import make_engine  # noqa: E402
from broker.demo import seed_demo  # noqa: E402
from broker.demo.loader import SQLITE_CACHE_KIB  # noqa: E402
from broker.runtime import Runtime  # noqa: E402
from broker.schema import upgrade_all  # noqa: E402
from broker.settings import Settings  # noqa: E402
from broker.vault.tables import table_name  # noqa: E402

BATCH = 500_000


@dataclass
class Run:
    seeder_s: float
    bare_s: float
    citizens: int
    consents: int
    records: int


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    """Every column but an INTEGER PRIMARY KEY, which the database assigns (vault ``id``, consent ``seq``)."""
    return [name for _, name, kind, _, _, pk in conn.execute(f"PRAGMA table_info({table})")
            if not (pk and kind.upper() in ("INTEGER", "BIGINT"))]


def _bare_copy(source: Path, target: Path, tables: list[str]) -> float:
    """Time plain executemany of every row of ``tables`` from ``source`` into ``target``."""
    read = sqlite3.connect(source)
    write = sqlite3.connect(target, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=OFF", f"cache_size=-{SQLITE_CACHE_KIB}", "foreign_keys=ON"):
        write.execute(f"PRAGMA {pragma}")
    write.executemany("INSERT INTO notice VALUES (?, ?, ?, ?, ?, ?)", read.execute("SELECT * FROM notice"))
    elapsed = 0.0
    for table in tables:
        columns = _columns(read, table)
        names, marks = ", ".join(columns), ", ".join("?" * len(columns))
        cursor = read.execute(f"SELECT {names} FROM {table} ORDER BY rowid")
        while rows := cursor.fetchmany(BATCH):
            started = time.perf_counter()
            write.execute("BEGIN IMMEDIATE")
            write.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)
            write.execute("COMMIT")
            elapsed += time.perf_counter() - started
    write.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    read.close()
    write.close()
    return elapsed


def run_once(citizens: int, records_per_citizen: float, seed: int, workdir: Path) -> Run:
    settings = Settings(data_dir=workdir / "seeder", policy_dir=ROOT / "policies")
    runtime = Runtime.from_settings(settings)
    upgrade_runtime(runtime)
    started = time.perf_counter()
    seed_demo(runtime, citizens=citizens, seed=seed, records_per_citizen=records_per_citizen)
    seeder_s = time.perf_counter() - started
    runtime.engine.dispose()

    source = settings.data_dir / "broker.db"
    vault = [table_name(d.id) for d in runtime.policy.datasets]
    bare_db = workdir / "bare.db"
    engine = make_engine(f"sqlite:///{bare_db}")
    upgrade_all(engine, runtime.policy)
    engine.dispose()
    bare_s = _bare_copy(source, bare_db, ["citizen", "guardianship", "consent_record", *vault])

    with sqlite3.connect(source) as conn:
        def count(table: str) -> int:
            return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]

        return Run(seeder_s=seeder_s, bare_s=bare_s, citizens=count("citizen"), consents=count("consent_record"),
                   records=sum(count(t) for t in vault))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--citizens", type=int, default=100_000)
    parser.add_argument("--records-per-citizen", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=None, help="default: 3 up to 200,000 citizens, else 1")
    args = parser.parse_args()
    repeat = args.repeat or (3 if args.citizens <= 200_000 else 1)

    runs = []
    for i in range(repeat):
        with tempfile.TemporaryDirectory(prefix="bench-seed-") as tmp:
            run = run_once(args.citizens, args.records_per_citizen, args.seed, Path(tmp))
        runs.append(run)
        print(f"run {i + 1}/{repeat}: seeder {run.seeder_s:.1f} s, bare executemany {run.bare_s:.1f} s", flush=True)

    seeder = statistics.median(r.seeder_s for r in runs)
    bare = statistics.median(r.bare_s for r in runs)
    ratio = statistics.median(r.seeder_s / r.bare_s for r in runs)
    last = runs[-1]
    rows = last.citizens + last.consents + last.records
    label = f"median of {repeat} runs" if repeat > 1 else "1 run"
    print(f"\ndemo seed, SQLite, {last.citizens:,} citizens, {last.consents:,} consent records, "
          f"{last.records:,} vault records ({label})")
    print(f"  seeder            {seeder:8.1f} s   {last.citizens / seeder:10,.0f} citizens/s   "
          f"{last.records / seeder:10,.0f} records/s   {rows / seeder:10,.0f} rows/s")
    print(f"  bare executemany  {bare:8.1f} s   {last.citizens / bare:10,.0f} citizens/s   "
          f"{last.records / bare:10,.0f} records/s   {rows / bare:10,.0f} rows/s")
    print(f"  seeder / bare     {ratio:8.2f}")


if __name__ == "__main__":
    main()
