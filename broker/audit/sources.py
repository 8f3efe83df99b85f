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

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

import rfc8785
from joserfc import jws
from sqlalchemy import Engine, func, select

from broker.audit import checkpoints, rfc9162
from broker.audit.checkpoints import Checkpoint, CheckpointInvalid, read_checkpoint
from broker.audit.integrator import positions
from broker.audit.log import timestamp
from broker.audit.models import AuditEntry, AuditNode
from broker.audit.tree import StoredTree
from broker.audit.verify import Finding, Inconsistent, LogVerifier, Report, check_checkpoint_order
from broker.db import session_scope
from broker.keymodels import SigningKey
from broker.keys import SignatureInvalid

CHUNK = 20_000
_ENTRIES = AuditEntry.__table__
_NODES = AuditNode.__table__
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

def _chunks(engine: Engine, statement: Any, key: Any, limit: int) -> Iterator[Any]:
    after = -1
    while after + 1 < limit:
        with session_scope(engine) as session:
            rows = session.connection().execute(statement.where(key > after, key < limit).order_by(key)
                                                .limit(CHUNK)).all()
        yield from rows
        if len(rows) < CHUNK:
            return
        after = rows[-1][0]


def verify_database(engine: Engine, kept: Iterable[str] = (), kept_jwks: dict[str, Any] | None = None) -> Report:
    report = Report()

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
        verifier = LogVerifier([*signed, *auditors], nodes_to_compare=nodes,
                               stored_nodes=((i, bytes(h)) for i, h in _chunks(
                                   engine, select(_NODES.c.id, _NODES.c.hash), _NODES.c.id, nodes)))
        c = _ENTRIES.c
        rows = _chunks(engine, select(c.seq, c.at, c.actor, c.action, c.purpose, c.dataset, c.decision, c.subject,
                                      c.leaf_hash, c.body), c.seq, count)
        for seq, at, actor, action, purpose, dataset, decision, subject, leaf, body in rows:
            verifier.add(seq, body.encode(), bytes(leaf), {
                "at": timestamp(at), "actor": actor, "action": action, "purpose": purpose, "dataset": dataset,
                "decision": decision, "subject": subject})
        verifier.finish(claimed_count=where.appended)
        _describe(report, verifier)
        report.checked.append(f"stored tree: {verifier.nodes_compared} subtree hashes match the recomputed ones")
        proofs = _consistency_proofs(engine, signed)
        report.checked.append(f"consistency: {proofs} proof(s) between consecutive checkpoints served from the "
                              "stored tree and verified (RFC 9162 §2.1.4.2)")

    return _run(report, work)


def _consistency_proofs(engine: Engine, signed: list[Checkpoint]) -> int:
    ordered = sorted({c.tree_size: c for c in signed}.values(), key=lambda c: c.tree_size)
    pairs = [(a, b) for a, b in zip(ordered, ordered[1:], strict=False) if a.tree_size > 0]
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


def export_line(line: str, number: int) -> tuple[int, bytes, bytes]:
    """(index, entry bytes, leaf hash) of one exported line; the entry is taken verbatim where the line is the
    broker's own canonical form, else re-canonicalised."""
    match = _LINE.search(line)
    if line.startswith('{"entry":') and match is not None:
        return int(match.group(1)), line[9:match.start()].encode(), bytes.fromhex(match.group(2))
    try:
        served = json.loads(line)
        return int(served["index"]), rfc8785.dumps(served["entry"]), bytes.fromhex(served["leaf_hash"])
    except (ValueError, KeyError, TypeError, rfc8785.CanonicalizationError):
        raise Inconsistent(Finding(f"line {number} of the export is not an entry {{index, leaf_hash, entry}}")) \
            from None


def verify_export(lines: Iterable[str], jwks: dict[str, Any], kept: Iterable[str]) -> Report:
    report = Report()

    def work() -> None:
        signed = _checked(((f"kept checkpoint #{n + 1}", t) for n, t in enumerate(kept)), jwks)
        check_checkpoint_order(signed, "kept checkpoint")
        report.checked.append(f"checkpoints: {len(signed)} kept, signatures verified against "
                              f"{len(jwks.get('keys', []))} key(s)")
        verifier = LogVerifier(signed)
        for number, line in enumerate(lines, start=1):
            if line.strip():
                verifier.add(*export_line(line, number))
        verifier.finish()
        _describe(report, verifier)

    return _run(report, work)
