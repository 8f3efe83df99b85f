"""Where ``audit verify`` reads the log from: the database, or an export with the checkpoints an auditor kept.

* :func:`verify_database`: every entry and every stored subtree hash (read in chunks, each in its own short
  transaction, so the broker keeps writing meanwhile), every checkpoint's signature against every key the
  broker ever had, the sequencer's count, and a consistency proof (RFC 9162 §2.1.4) served from the stored
  tree between each pair of consecutive checkpoints. Checkpoints an auditor kept may be added: a log
  rewritten and re-signed inside the database passes its own checkpoints but not theirs.
* :func:`verify_export`: no database at all; a JSON Lines export (``GET /v1/audit/entries?format=jsonl``),
  the JWKS, and the checkpoints kept (one compact JWS per line, or the JSON ``GET /v1/audit/checkpoint``
  answers).
"""

from __future__ import annotations

import functools
import itertools
import json
import multiprocessing
import os
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import rfc8785
from joserfc import jws
from sqlalchemy import Engine, func, select

from broker.audit import checkpoints, rfc9162
from broker.audit.checkpoints import Checkpoint, CheckpointInvalid, read_checkpoint
from broker.audit.integrator import positions
from broker.audit.models import AuditEntry
from broker.audit.tree import StoredTree
from broker.audit.verify import (
    Checked,
    Finding,
    Inconsistent,
    LogVerifier,
    Report,
    Row,
    check_checkpoint_order,
    check_entries,
)
from broker.db import make_engine, session_scope
from broker.keymodels import SigningKey
from broker.keys import SignatureInvalid

CHUNK = 20_000  # entries per run: one read, checked by one worker process
_ENTRIES = AuditEntry.__table__
_LINE = re.compile(r',"index":(\d+),"leaf_hash":"([0-9a-f]{64})"}\s*$')


def _checked(tokens: Iterable[tuple[str, str]], jwks: dict[str, Any]) -> list[Checkpoint]:
    """Each (label, token) verified against ``jwks``; the first one that fails raises Inconsistent."""
    known = {key.get("kid") for key in jwks.get("keys", [])}
    out = []
    for label, token in tokens:
        try:
            out.append(read_checkpoint(token, jwks))
        except (SignatureInvalid, CheckpointInvalid) as exc:
            kid = _kid(token)
            why = f"signed by an unknown key {kid}" if kid not in known else exc.detail
            raise Inconsistent(Finding(f"{label}: {why}")) from None
    return out


def _kid(token: str) -> str:
    try:
        return str(jws.extract_compact(token.encode()).headers().get("kid"))
    except Exception:  # not even a JWS
        return "(none)"


def _run(report: Report, work: Any) -> Report:
    try:
        work()
    except Inconsistent as exc:
        report.finding = exc.finding
    return report


# -- the database ------------------------------------------------------------------------------------------

_ENTRY_SQL = {
    # ``at`` as the entry writes it, so that comparing needs no date parsing.
    "sqlite": "SELECT seq, replace(at, ' ', 'T') || 'Z', actor, action, purpose, dataset, decision, subject, "
              "leaf_hash, body FROM audit_entry WHERE seq > ? AND seq < ? ORDER BY seq LIMIT ?",
    "postgresql": "SELECT seq, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), actor, action, "
                  "purpose, dataset, decision, subject, leaf_hash, body FROM audit_entry "
                  "WHERE seq > %s AND seq < %s ORDER BY seq LIMIT %s",
}
_NODE_SQL = {
    "sqlite": "SELECT id, hash FROM audit_node WHERE id > ? AND id < ? ORDER BY id LIMIT ?",
    "postgresql": "SELECT id, hash FROM audit_node WHERE id > %s AND id < %s ORDER BY id LIMIT %s",
}


def _range(engine: Engine, sql: dict[str, str], lo: int, hi: int) -> list[tuple[Any, ...]]:
    """Rows with ``lo <= key < hi`` in key order, straight from the driver (a million rows through the ORM would
    cost more than checking them), in one short read: on SQLite the driver connection runs in autocommit, so
    the read takes no lock; on PostgreSQL the read's transaction ends with it."""
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute(sql[engine.dialect.name], (lo - 1, hi, hi - lo))
        rows = cursor.fetchall()
        connection.rollback()
        return rows
    finally:
        connection.close()


def _node_reader(engine: Engine, total: int) -> Callable[[int, int], list[bytes]]:
    """Stored node hashes by id range, read ahead ``CHUNK`` at a time (checkpoints may be a few entries apart)."""
    buffer: list[bytes] = []
    start = 0

    def read(first: int, count: int) -> list[bytes]:
        nonlocal buffer, start
        if not start <= first or first + count > start + len(buffer):
            start, buffer = first, []
            for offset, (ident, digest) in enumerate(
                    _range(engine, _NODE_SQL, first, min(total, first + max(count, CHUNK)))):
                if ident != first + offset:
                    break  # a missing node: the list stops short there
                buffer.append(bytes(digest))
        return buffer[first - start:first - start + count]

    return read


_ENGINES: dict[str, Engine] = {}


def _check_database_run(url: str, lo: int, hi: int, engine: Engine | None = None) -> Checked:
    """One run of entries, checked with ``engine``, or in a worker process with its own engine for ``url``."""
    if engine is None:
        engine = _ENGINES.get(url)
        if engine is None:
            engine = _ENGINES[url] = make_engine(url)
    rows = _range(engine, _ENTRY_SQL, lo, hi)
    return check_entries(lo, ((row[0], row[9], bytes(row[8]), row[1:8]) for row in rows))


def _runs(work: Callable[..., Checked], jobs: Iterable[tuple[Any, ...]], workers: int,
          local: Callable[..., Checked] | None = None) -> Iterator[Checked]:
    """``work(*job)`` for each job, in order: in ``workers`` processes once there is more than one run (a few
    runs in flight, so a million-entry export is never all in memory), else here with ``local`` (or ``work``)."""
    jobs = iter(jobs)
    head = [job for job in (next(jobs, None), next(jobs, None)) if job is not None]
    if workers <= 1 or len(head) < 2:
        yield from ((local or work)(*job) for job in itertools.chain(head, jobs))
        return
    # spawn: a fresh interpreter per worker, whatever threads or connections this process holds
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending = deque(pool.submit(work, *job) for job in head)
        for job in jobs:
            if len(pending) >= workers * 2:
                yield pending.popleft().result()
            pending.append(pool.submit(work, *job))
        while pending:
            yield pending.popleft().result()


def verify_database(engine: Engine, kept: Iterable[str] = (), kept_jwks: dict[str, Any] | None = None, *,
                    workers: int | None = None) -> Report:
    """``workers``: processes checking runs of entries in parallel (default: one per CPU)."""
    report = Report()
    workers = workers if workers is not None else os.cpu_count() or 1

    def work() -> None:
        with session_scope(engine) as session:
            connection = session.connection()
            stored = checkpoints.every(connection)
            where = positions(connection)
            last_seq = connection.execute(select(func.max(_ENTRIES.c.seq))).scalar()
            keys = [json.loads(k) for k in connection.execute(select(SigningKey.__table__.c.public_jwk)).scalars()]
        jwks = {"keys": keys}
        signed = _checked(((f"checkpoint of size {c.tree_size} ({c.timestamp})", c.jws) for c in stored), jwks)
        for row, token in zip(stored, signed, strict=True):
            if token.payload() != row.payload():
                raise Inconsistent(Finding(f"checkpoint of size {row.tree_size}: the stored fields differ from "
                                           "what its signature covers"))
        auditors = _checked(((f"kept checkpoint #{n + 1}", t) for n, t in enumerate(kept)), kept_jwks or jwks)
        check_checkpoint_order(signed)
        check_checkpoint_order(auditors, "kept checkpoint")
        report.checked.append(f"checkpoints: {len(signed)} stored and {len(auditors)} kept, signatures verified "
                              f"against {len(keys)} broker key(s)")
        count = max(where.appended, (last_seq + 1) if last_seq is not None else 0)
        integrated = min(where.integrated, count)
        nodes = integrated - integrated.bit_count()
        verifier = LogVerifier([*signed, *auditors], nodes_to_compare=nodes, stored_nodes=_node_reader(engine, nodes))
        url = engine.url.render_as_string(hide_password=False)
        jobs = [(url, lo, min(count, lo + CHUNK)) for lo in range(0, count, CHUNK)]
        here = functools.partial(_check_database_run, engine=engine)
        for checked in _runs(_check_database_run, jobs, workers, local=here):
            verifier.fold(checked)
        verifier.finish(claimed_count=where.appended)
        _describe(report, verifier)
        report.checked.append(f"stored tree: {verifier.nodes_compared} subtree hashes match the recomputed ones")
        proofs = _consistency_proofs(engine, signed)
        report.checked.append(f"consistency: {proofs} proof(s) between consecutive checkpoints served from the "
                              "stored tree and verified (RFC 9162 §2.1.4.2)")

    return _run(report, work)


def _consistency_proofs(engine: Engine, signed: list[Checkpoint]) -> int:
    ordered = sorted({c.tree_size: c for c in signed}.values(), key=lambda c: c.tree_size)
    pairs = [(a, b) for a, b in itertools.pairwise(ordered) if a.tree_size > 0]
    for start in range(0, len(pairs), 200):
        batch = pairs[start:start + 200]
        with session_scope(engine) as session:
            tree = StoredTree(session.connection())
            paths = tree.paths([(rfc9162.consistency_path, a.tree_size, b.tree_size) for a, b in batch])
        for (a, b), path in zip(batch, paths, strict=True):
            if not rfc9162.verify_consistency(a.tree_size, b.tree_size, a.root, b.root, path):
                raise Inconsistent(Finding(f"no valid consistency proof from the checkpoint of size {a.tree_size} "
                                           f"to the one of size {b.tree_size}"))
    return len(pairs)


def _describe(report: Report, verifier: LogVerifier) -> None:
    n = verifier.count
    report.checked.append(f"entries: {n} (indexes 0..{n - 1}, no gaps), each canonical JSON (RFC 8785) whose leaf "
                          "hash was recomputed, times non-decreasing" if n else "entries: none")
    report.checked.append(f"roots: {verifier.roots_checked} checkpoint root(s) recomputed from the entries; each "
                          "checkpoint extends the one before it")
    report.checked.append(f"budgets: {verifier.replay.queries} allowed queries replayed over "
                          f"{verifier.replay.accounts} account(s), none over its cap")


# -- an export ---------------------------------------------------------------------------------------------

def read_kept(lines: Iterable[str]) -> list[str]:
    """Checkpoint tokens from a file an auditor kept: compact JWS lines or JSON with a ``checkpoint`` field."""
    tokens = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        tokens.append(json.loads(line)["checkpoint"] if line.startswith("{") else line)
    return tokens


def export_line(line: str, number: int) -> tuple[int, str, bytes]:
    """(index, entry bytes, leaf hash) of one exported line; the entry is taken verbatim where the line is the
    broker's own canonical form, else re-canonicalised."""
    match = _LINE.search(line)
    if line.startswith('{"entry":') and match is not None:
        return int(match.group(1)), line[9:match.start()], bytes.fromhex(match.group(2))
    try:
        served = json.loads(line)
        return int(served["index"]), rfc8785.dumps(served["entry"]).decode(), bytes.fromhex(served["leaf_hash"])
    except (ValueError, KeyError, TypeError, rfc8785.CanonicalizationError):
        raise Inconsistent(Finding(f"line {number} of the export is not an entry {{index, leaf_hash, entry}}")) \
            from None


def _check_export_run(first: int, lines: list[tuple[int, str]]) -> Checked:
    def rows() -> Iterator[Row]:
        for number, line in lines:
            index, body, leaf = export_line(line, number)
            yield index, body, leaf, None

    return check_entries(first, rows())


def verify_export(lines: Iterable[str], jwks: dict[str, Any], kept: Iterable[str], *,
                  workers: int | None = None) -> Report:
    report = Report()
    workers = workers if workers is not None else os.cpu_count() or 1

    def jobs() -> Iterator[tuple[int, list[tuple[int, str]]]]:
        run: list[tuple[int, str]] = []
        first = 0
        for number, line in enumerate(lines, start=1):
            if line.strip():
                run.append((number, line))
                if len(run) == CHUNK:
                    yield first, run
                    first, run = first + len(run), []
        if run:
            yield first, run

    def work() -> None:
        signed = _checked(((f"kept checkpoint #{n + 1}", t) for n, t in enumerate(kept)), jwks)
        check_checkpoint_order(signed, "kept checkpoint")
        report.checked.append(f"checkpoints: {len(signed)} kept, signatures verified against "
                              f"{len(jwks.get('keys', []))} key(s)")
        verifier = LogVerifier(signed)
        for checked in _runs(_check_export_run, jobs(), workers):
            verifier.fold(checked)
        verifier.finish()
        _describe(report, verifier)

    return _run(report, work)
