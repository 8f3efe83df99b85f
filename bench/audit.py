"""Access log throughput: appends through the domain API, integration into the tree, verification of a big log.

Each figure is printed next to raw ``hashlib`` SHA-256 over the same bytes in the same run (the floor no
Merkle log can go under), on a fresh SQLite data directory (WAL, ``synchronous=FULL``):

* **append**: :func:`broker.audit.record` (sequence number, canonical JSON, leaf hash, insert), one entry per
  transaction (each commit an fsync, as one action's own transaction would be) and 100 per transaction (how
  a busy broker's group commits amortise it); vs SHA-256 of the entry bytes;
* **integrate**: :func:`broker.audit.integrator.integrate` folding the whole log (read, rehash each entry,
  node hashes, node inserts, one signed checkpoint per batch); vs SHA-256 of the leaf and node preimages;
* **verify**: ``audit verify`` against the database (every leaf, canonical form, sequence, time, columns,
  every stored node, every checkpoint's root and signature, consistency proofs), and offline from a JSON Lines
  export with the checkpoints (the same checks but the database's own); vs SHA-256 of the entries. Each is
  run ``--runs`` times and the median printed, wall time and CPU time (this process and its workers).

The big log is written with bulk inserts (its bodies are the same canonical JSON :func:`record` writes,
checked on a sample), then integrated and verified through the real code.
Targets on the reference 2-core machine: >= 5,000 appends/s; 1,000,000 entries verified in <= 10 s. The
verification's CPU time is printed too: on a machine shared with other work, wall time overstates it.

The bench's log starts as ``db upgrade`` leaves it (one ``policy.loaded`` entry): ``audit_entry`` is
append-only, so nothing is cleared. ``--profile`` prints where one single-process database verification
spends its time (cProfile), the first thing to read before making it faster.

Usage: ``python bench/audit.py [--entries 1000000] [--appends 5000] [--runs 3] [--profile]``
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import os
import pstats
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from broker.audit import AuditEvent, checkpoints, record, rfc9162  # noqa: E402
from broker.audit.entries import EntryFilter, jsonl, stream  # noqa: E402
from broker.audit.integrator import integrate  # noqa: E402
from broker.audit.log import canonical, entry_of  # noqa: E402
from broker.audit.models import AuditEntry  # noqa: E402
from broker.audit.sources import verify_database, verify_export  # noqa: E402
from broker.audit.verify import Report  # noqa: E402
from broker.commands.db import upgrade_runtime  # noqa: E402
from broker.db import session_scope  # noqa: E402
from broker.keys import KeyRing  # noqa: E402
from broker.runtime import Runtime  # noqa: E402
from broker.settings import Settings  # noqa: E402
from broker.timeutil import FixedClock  # noqa: E402

APPEND_TARGET = 5_000
VERIFY_TARGET_S = 10.0
START = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
BULK_START = START + timedelta(hours=4)  # after the appends (and the upgrade's entry, at the runtime's clock)


def query_event(i: int) -> AuditEvent:
    """A typical entry: an allowed query with the budget fields the replay reads."""
    return AuditEvent(
        actor="service:mobility", action="query", purpose="traffic-planning", dataset="trips", decision="allow",
        epsilon=0.25, request_hash=hashlib.sha256(b"r%d" % i).hexdigest(),
        result_hash=hashlib.sha256(b"s%d" % i).hexdigest(),
        details={"service": "mobility", "period": f"p{i // 10}", "epsilon_charged": 0.25, "statistic": "mean",
                 "caps": {"per_query": 0.5, "per_service": 4, "total": 6}, "query_id": f"q-{i}"})


def sha_rate(blobs: list[bytes], per_item: int = 1) -> float:
    started = time.perf_counter()
    for blob in blobs:
        for _ in range(per_item):
            hashlib.sha256(blob).digest()
    return len(blobs) / (time.perf_counter() - started)


def bench_appends(runtime: Runtime, first: int, n: int, per_transaction: int) -> tuple[float, list[bytes]]:
    clock = FixedClock(START)
    started = time.perf_counter()
    for start in range(first, first + n, per_transaction):
        with session_scope(runtime.engine) as session:
            for i in range(start, min(first + n, start + per_transaction)):
                record(session, query_event(i), clock.now())
    elapsed = time.perf_counter() - started
    with runtime.engine.connect() as connection:
        bodies = [b.encode() for b in connection.execute(
            text("SELECT body FROM audit_entry ORDER BY seq DESC LIMIT :n"), {"n": n}).scalars()]
    return n / elapsed, bodies


def bulk_fill(runtime: Runtime, total: int) -> list[bytes]:
    """Entries ``first..total-1`` as :func:`record` would write them, inserted in bulk; returns their bodies."""
    with runtime.engine.connect() as connection:
        first = connection.execute(text("SELECT count(*) FROM audit_entry")).scalar() or 0
    bodies: list[bytes] = []
    rows = []
    for seq in range(first, total):
        moment = BULK_START + timedelta(microseconds=seq)
        entry = entry_of(seq, moment, query_event(seq))
        body = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        if seq % 50_000 == 0 and body != canonical(entry):
            raise SystemExit("bulk bodies are not RFC 8785")
        bodies.append(body)
        rows.append({"seq": seq, "at": moment, "actor": "service:mobility", "action": "query",
                     "purpose": "traffic-planning", "dataset": "trips", "decision": "allow",
                     "subject": None, "leaf_hash": rfc9162.leaf_hash(body), "body": body.decode()})
        if len(rows) == 50_000:
            _insert(runtime, rows)
            rows = []
    _insert(runtime, rows)
    with runtime.engine.begin() as connection:
        connection.execute(text("UPDATE audit_state SET position = :n, moment_us = :m WHERE name = 'sequencer'"),
                           {"n": total, "m": int((BULK_START + timedelta(hours=1)).timestamp() * 1e6)})
    return bodies


def _insert(runtime: Runtime, rows: list[dict[str, object]]) -> None:
    if rows:
        with runtime.engine.begin() as connection:
            connection.execute(AuditEntry.__table__.insert(), rows)


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (the verification's worker processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def published_keys(runtime: Runtime) -> dict[str, Any]:
    """The JWKS an auditor downloads (``GET /v1/audit/keys``)."""
    with session_scope(runtime.engine) as session:
        return KeyRing.load(session, runtime.secrets).jwks()


def timed(work: Callable[[], Report], runs: int) -> tuple[float, float, Report]:
    """Median wall and CPU seconds of ``runs`` runs of ``work``; its last report (each must pass)."""
    walls, cpus = [], []
    report = Report()
    for _ in range(runs):
        cpu_before, started = _cpu(), time.perf_counter()
        report = work()
        walls.append(time.perf_counter() - started)
        cpus.append(_cpu() - cpu_before)
        if not report.ok:
            raise SystemExit(f"verification FAILED: {report.finding}")
    return statistics.median(walls), statistics.median(cpus), report


def profile(runtime: Runtime) -> None:
    profiler = cProfile.Profile()
    profiler.runcall(verify_database, runtime.engine, workers=1)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--appends", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=3, help="verification runs; the median is printed")
    parser.add_argument("--profile", action="store_true", help="profile one single-process database verification")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        runtime = Runtime.from_settings(Settings(data_dir=Path(tmp), policy_dir=ROOT / "policies"),
                                        clock=FixedClock(START + timedelta(hours=3)))
        upgrade_runtime(runtime)

        singles = min(args.appends, 2_000)
        single, bodies = bench_appends(runtime, 0, singles, 1)
        batched, more = bench_appends(runtime, singles, args.appends, 100)
        raw = sha_rate(bodies + more)
        print(f"append, 1 per transaction:   {single:10,.0f} entries/s   (raw SHA-256 of the entries: {raw:,.0f}/s)")
        print(f"append, 100 per transaction: {batched:10,.0f} entries/s   target >= {APPEND_TARGET:,}")

        big = bulk_fill(runtime, args.entries)
        started = time.perf_counter()
        integrate(runtime.engine, runtime.secrets, runtime.clock)
        integration = args.entries / (time.perf_counter() - started)
        raw_tree = sha_rate([b"\x00" + b for b in big[:200_000]]) / 2  # one leaf and ~one node hash per entry
        print(f"integrate:                   {integration:10,.0f} leaves/s    (raw SHA-256, leaf + node: "
              f"{raw_tree:,.0f}/s)")

        if args.profile:
            profile(runtime)
        raw_s = args.entries / sha_rate(big)  # the bulk entries stand for the few appended ones too
        verify_s, cpu_s, report = timed(lambda: verify_database(runtime.engine), args.runs)
        print(f"verify {args.entries:,} entries:  {verify_s:8.1f} s          (raw SHA-256 of the same bytes: "
              f"{raw_s:.2f} s, {verify_s / raw_s:.1f}x) target <= {VERIFY_TARGET_S:.0f} s; median of {args.runs}")
        # Wall time depends on what else the machine runs; CPU time (this process and its workers) does not.
        print(f"  CPU {cpu_s:.1f} s in all ({cpu_s / args.entries * 1e6:.1f} µs per entry) over {os.cpu_count()} "
              f"CPUs; load average {os.getloadavg()[0]:.1f}")
        for line in report.checked:
            print(f"  checked  {line}")

        export = Path(tmp) / "export.jsonl"
        with export.open("w", encoding="utf-8") as out:
            out.writelines(jsonl(stream(runtime.engine, EntryFilter())))
        with runtime.engine.connect() as connection:
            kept = [c.jws for c in checkpoints.every(connection)]

        def offline() -> Report:
            with export.open(encoding="utf-8") as lines:
                return verify_export(lines, published_keys(runtime), kept)

        offline_s, offline_cpu, report = timed(offline, args.runs)
        print(f"verify offline, {args.entries:,} entries from JSON Lines and {len(kept)} checkpoints: "
              f"{offline_s:.1f} s, CPU {offline_cpu:.1f} s (raw SHA-256 of the entries: {raw_s:.2f} s); median of "
              f"{args.runs}; load average {os.getloadavg()[0]:.1f}")
        for line in report.checked:
            print(f"  checked  {line}")
        runtime.dispose()


if __name__ == "__main__":
    main()
