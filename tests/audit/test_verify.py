"""``audit verify``: a tampered log fails and the report names the place; an untouched one passes."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import rfc8785
from joserfc import jws
from joserfc.jwk import ECKey
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from broker.audit import AuditEvent, record, rfc9162
from broker.audit.checkpoints import CHECKPOINT_TYP
from broker.audit.integrator import integrate
from broker.audit.sources import verify_database, verify_export
from broker.cli import app as cli
from broker.db import session_scope
from broker.keys import KeyRing, Secrets, b64u, canonical_json
from broker.settings import Settings
from broker.timeutil import FixedClock
from tests.audit.conftest import Append, execute, export_lines

SIZES = (10, 25, 40)

# These tests change, delete, move and insert entries: first they drop the triggers that keep audit_entry
# append-only (tests/audit/test_append_only.py checks those), as someone holding the database could.
pytestmark = pytest.mark.usefixtures("tamperable")


@pytest.fixture
def log(engine: Engine, append: Append, secrets: Secrets, clock: FixedClock, keyring: KeyRing) -> list[str]:
    """40 entries and checkpoints at 10, 25 and 40; returns the checkpoints (an auditor keeps them)."""
    kept, previous = [], 0
    for size in SIZES:
        append(size - previous)
        previous = size
        checkpoint = integrate(engine, secrets, clock)
        assert checkpoint is not None and checkpoint.tree_size == size
        kept.append(checkpoint.jws)
    return kept


def body_of(engine: Engine, seq: int) -> dict[str, object]:
    with engine.connect() as connection:
        return json.loads(connection.execute(text("SELECT body FROM audit_entry WHERE seq = :s"), {"s": seq}).scalar())


def rewrite(engine: Engine, seq: int, change: Callable[[dict[str, object]], None], *, fix_hash: bool) -> None:
    entry = body_of(engine, seq)
    change(entry)
    body = rfc8785.dumps(entry)
    if fix_hash:
        execute(engine, "UPDATE audit_entry SET body = :b, leaf_hash = :h WHERE seq = :s", b=body.decode(),
                h=rfc9162.leaf_hash(body), s=seq)
    else:
        execute(engine, "UPDATE audit_entry SET body = :b WHERE seq = :s", b=body.decode(), s=seq)


def failure(engine: Engine, kept: Sequence[str] = (), jwks: dict[str, object] | None = None) -> str:
    report = verify_database(engine, kept, jwks)
    assert not report.ok, report.checked
    return str(report.finding)


def test_an_untouched_log_passes_every_check(engine: Engine, log: list[str], keyring: KeyRing) -> None:
    report = verify_database(engine, log)
    assert report.ok, report.finding
    text = "\n".join(report.checked)
    assert "entries: 40 (indexes 0..39, no gaps)" in text
    assert "3 stored and 3 kept" in text and "2 proof(s) between consecutive checkpoints" in text
    assert verify_export(export_lines(engine), keyring.jwks(), log).ok


def test_a_changed_entry_is_named(engine: Engine, log: list[str]) -> None:
    rewrite(engine, 17, lambda e: e.update(actor="service:someone-else"), fix_hash=False)
    assert failure(engine).startswith("index 17: the entry hashes to")


def test_a_changed_entry_with_a_recomputed_leaf_hash_is_located(engine: Engine, log: list[str]) -> None:
    rewrite(engine, 17, lambda e: e.update(actor="service:someone-else"), fix_hash=True)
    assert failure(engine) == "index 17: column actor holds 'system' but the entry says 'service:someone-else'"
    rewrite(engine, 17, lambda e: e.update(actor="system", details={"i": "changed"}), fix_hash=True)
    assert failure(engine).startswith("index 16: entries 16..17: the stored subtree hash differs")


def test_a_deleted_entry_is_named(engine: Engine, log: list[str]) -> None:
    execute(engine, "DELETE FROM audit_entry WHERE seq = 17")
    assert failure(engine) == "index 17: missing: the sequence jumps from 16 to 18"


def test_deleting_the_newest_entry_is_caught_by_the_checkpoint(engine: Engine, log: list[str]) -> None:
    execute(engine, "DELETE FROM audit_entry WHERE seq = 39")
    assert failure(engine).startswith("index 39: missing: the checkpoint of size 40")


def test_reordered_entries_are_named(engine: Engine, log: list[str]) -> None:
    execute(engine, "UPDATE audit_entry SET seq = -1 WHERE seq = 5")
    execute(engine, "UPDATE audit_entry SET seq = 5 WHERE seq = 6")
    execute(engine, "UPDATE audit_entry SET seq = 6 WHERE seq = -1")
    assert failure(engine).startswith("index 5: the entry says it is entry 6")


def test_an_inserted_entry_is_named(engine: Engine, log: list[str]) -> None:
    # Shift entries 20.. one place up (through a free range: the key is unique at every step), then forge 20.
    execute(engine, "UPDATE audit_entry SET seq = seq + 1000 WHERE seq >= 20")
    execute(engine, "UPDATE audit_entry SET seq = seq - 999 WHERE seq >= 1000")
    forged = dict(body_of(engine, 19), seq=20, details={"i": "forged"})
    body = rfc8785.dumps(forged)
    execute(engine, "INSERT INTO audit_entry (seq, at, actor, action, leaf_hash, body) "
                    "SELECT 20, at, actor, action, :h, :b FROM audit_entry WHERE seq = 19", h=rfc9162.leaf_hash(body),
            b=body.decode())
    assert failure(engine).startswith("index 21: the entry says it is entry 20: an entry was inserted")


def test_a_changed_filter_column_is_named(engine: Engine, log: list[str]) -> None:
    execute(engine, "UPDATE audit_entry SET action = 'login' WHERE seq = 3")
    assert failure(engine) == "index 3: column action holds 'login' but the entry says 'test.event'"


def test_bytes_that_are_not_canonical_json_are_refused(engine: Engine, log: list[str]) -> None:
    body = json.dumps(body_of(engine, 30), indent=1).encode()
    execute(engine, "UPDATE audit_entry SET body = :b, leaf_hash = :h WHERE seq = 30", b=body.decode(),
            h=rfc9162.leaf_hash(body))
    assert failure(engine).startswith("index 30: not a canonical JSON entry")


def test_a_checkpoint_signed_by_an_unknown_key_fails(engine: Engine, log: list[str], clock: FixedClock) -> None:
    stranger = ECKey.generate_key("P-256", private=True, auto_kid=True)
    payload = {"tree_size": 40, "root_hash": "00" * 32, "timestamp": "2026-03-02T09:31:00.000000Z"}
    forged = jws.serialize_compact({"alg": "ES256", "kid": stranger.kid, "typ": CHECKPOINT_TYP},
                                   canonical_json(payload), stranger, algorithms=["ES256"])
    assert failure(engine, [forged]).startswith(f"kept checkpoint #1: signed by an unknown key {stranger.kid}")
    execute(engine, "UPDATE audit_checkpoint SET jws = :t WHERE tree_size = 40", t=forged)
    assert failure(engine).startswith("checkpoint of size 40 (")


def test_a_checkpoint_whose_payload_was_altered_fails(engine: Engine, log: list[str]) -> None:
    header, _payload, signature = log[1].split(".")
    altered = json.loads(jws.extract_compact(log[1].encode()).payload)
    altered["tree_size"] = 26
    token = ".".join([header, b64u(canonical_json(altered)), signature])  # the signature covers the old payload
    assert "signature does not verify" in failure(engine, [token])


def test_a_rewritten_and_re_signed_log_fails_against_an_auditors_older_checkpoint(
        engine: Engine, log: list[str], secrets: Secrets, clock: FixedClock, keyring: KeyRing) -> None:
    # An operator with every key rewrites entry 3 and everything derived from it, and signs anew.
    rewrite(engine, 3, lambda e: e.update(details={"i": "rewritten"}), fix_hash=True)
    for table in ("audit_node", "audit_checkpoint", "audit_state"):
        execute(engine, f"DELETE FROM {table}")
    execute(engine, "INSERT INTO audit_state (name, position, moment_us) VALUES ('sequencer', 40, 0)")
    assert integrate(engine, secrets, clock) is not None
    assert verify_database(engine).ok  # consistent with itself...
    found = failure(engine, log[:1])  # ...but not with what the auditor kept
    assert found.startswith("index 0: entries 0..9 do not lead to the root signed in the checkpoint of size 10")
    offline = verify_export(export_lines(engine), keyring.jwks(), log[:1])
    assert str(offline.finding).startswith("index 0: entries 0..9 do not lead to the root")


def test_an_export_verifies_offline_and_a_tampered_line_is_named(engine: Engine, log: list[str],
                                                                  keyring: KeyRing) -> None:
    lines = export_lines(engine)
    report = verify_export(lines, keyring.jwks(), log)
    assert report.ok and "roots: 3 checkpoint root(s) recomputed" in "\n".join(report.checked)
    pretty = [json.dumps(json.loads(line), indent=2).replace("\n", " ") + "\n" for line in lines]
    assert verify_export(pretty, keyring.jwks(), log).ok  # reformatted by some tool: re-canonicalised
    lines[12] = lines[12].replace('"actor":"system"', '"actor":"service:x"')
    assert str(verify_export(lines, keyring.jwks(), log).finding).startswith("index 12: the entry hashes to")
    assert str(verify_export(export_lines(engine)[:30], keyring.jwks(), log).finding).startswith(
        "index 30: missing: the checkpoint of size 40")


def _query(i: int, charged: float, caps: dict[str, float], **details: object) -> AuditEvent:
    return AuditEvent(actor="service:mobility", action="query", purpose="traffic-planning", dataset="trips",
                      decision="allow", epsilon=charged,
                      details={"service": "mobility", "period": "2026", "caps": caps, "query_id": f"q{i}",
                               **details})


@pytest.mark.parametrize(("charges", "expected"), [
    ([0.5] * 8, None),
    ([0.5] * 9, "index 8: budget account service mobility/traffic-planning/trips/2026 reaches ε 4.5, over its cap"),
    ([0.6], "index 0: ε 0.6 charged in one query, over the per-query cap 0.5"),
])
def test_the_budget_replay_finds_an_account_over_its_cap(engine: Engine, clock: FixedClock, keyring: KeyRing,
                                                         charges: list[float], expected: str | None) -> None:
    caps = {"per_query": 0.5, "per_service": 4.0, "total": 6.0}
    with session_scope(engine) as session:
        for i, charged in enumerate(charges):
            record(session, _query(i, charged, caps), clock.now())
    report = verify_database(engine)
    if expected is None:
        assert report.ok, report.finding
    else:
        assert str(report.finding).startswith(expected)


def test_the_replay_needs_the_caps_and_checks_what_the_broker_says_it_spent(engine: Engine, clock: FixedClock,
                                                                           keyring: KeyRing) -> None:
    caps = {"per_query": 0.5, "per_service": 4.0, "total": 6.0}
    with session_scope(engine) as session:
        record(session, _query(0, 0.5, caps, spent={"service": 0.5, "total": 0.5}), clock.now())
        record(session, _query(1, 0.5, caps, spent={"service": 1.5, "total": 1.5}), clock.now())
    assert failure(engine).startswith("index 1: budget account service mobility/traffic-planning/trips/2026: the "
                                      "log's charges add up to ε 1 but the entry says 1.5 was spent")
    execute(engine, "DELETE FROM audit_entry")
    execute(engine, "DELETE FROM audit_state")
    with session_scope(engine) as session:
        record(session, AuditEvent(actor="service:mobility", action="query", purpose="traffic-planning",
                                   dataset="trips", decision="allow", epsilon=0.5, details={"period": "2026"}),
               clock.now())
    assert failure(engine) == "index 0: an allowed query without details.caps {per_query, per_service, total}"


def test_the_command_prints_what_it_checked_and_exits_1_on_the_first_inconsistency(
        engine: Engine, log: list[str], settings: Settings, tmp_path: Path, keyring: KeyRing) -> None:
    env = {"BROKER_DATA_DIR": str(settings.data_dir), "BROKER_DATABASE_URL": settings.resolved_database_url(),
           "BROKER_POLICY_DIR": str(settings.policy_dir)}
    runner = CliRunner()
    kept = tmp_path / "kept.txt"
    kept.write_text("\n".join(log) + "\n")
    done = runner.invoke(cli, ["audit", "verify", "--checkpoints", str(kept)], env=env)
    assert done.exit_code == 0, done.output
    assert "checked  entries: 40" in done.output and "OK:" in done.output

    export, keys = tmp_path / "log.jsonl", tmp_path / "jwks.json"
    export.write_text("".join(export_lines(engine)))
    keys.write_text(json.dumps(keyring.jwks()))
    offline = runner.invoke(cli, ["audit", "verify", "--entries", str(export), "--jwks", str(keys),
                                  "--checkpoints", str(kept)], env={})
    assert offline.exit_code == 0, offline.output

    execute(engine, "DELETE FROM audit_entry WHERE seq = 7")
    failed = runner.invoke(cli, ["audit", "verify"], env=env)
    assert failed.exit_code == 1
    assert "FAILED: index 7: missing" in failed.output


def test_runs_checked_in_parallel_processes_find_the_same_first_place(
        engine: Engine, log: list[str], keyring: KeyRing, monkeypatch: pytest.MonkeyPatch) -> None:
    from broker.audit import sources

    monkeypatch.setattr(sources, "CHUNK", 7)  # six runs of entries, checked by two worker processes
    assert verify_database(engine, log, workers=2).ok
    assert verify_export(export_lines(engine), keyring.jwks(), log, workers=2).ok
    rewrite(engine, 17, lambda e: e.update(details={"i": "changed"}), fix_hash=False)
    execute(engine, "DELETE FROM audit_entry WHERE seq = 30")
    assert str(verify_database(engine, workers=2).finding).startswith("index 17: the entry hashes to")
    assert str(verify_export(export_lines(engine), keyring.jwks(), log, workers=2).finding).startswith(
        "index 17: the entry hashes to")


def test_entries_beyond_the_fast_path_are_verified_by_rfc_8785_itself(engine: Engine, clock: FixedClock,
                                                                      keyring: KeyRing) -> None:
    values = (1e-7, 4.0, 1e21, 2**53 - 1, "Transports en commun à Lyon", {"\U0001f600": 1, "\ufb01": 2})
    with session_scope(engine) as session:
        for value in values:
            record(session, AuditEvent(actor="system", action="test.event", details={"v": value}), clock.now())
    assert verify_database(engine).ok
    assert verify_export(export_lines(engine), keyring.jwks(), []).ok
    # Sorted by code point (as orjson and the standard library sort) rather than by UTF-16 unit: not RFC 8785.
    body = json.dumps(body_of(engine, 5), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert body != rfc8785.dumps(body_of(engine, 5))
    execute(engine, "UPDATE audit_entry SET body = :b, leaf_hash = :h WHERE seq = 5", b=body.decode(),
            h=rfc9162.leaf_hash(body))
    assert failure(engine).startswith("index 5: not a canonical JSON entry")


def test_an_entry_of_the_wrong_shape_is_reported_not_a_crash(engine: Engine, clock: FixedClock) -> None:
    with session_scope(engine) as session:
        for _ in range(2):
            record(session, AuditEvent(actor="service:mobility", action="query", purpose="traffic-planning",
                                       dataset="trips", decision="allow", epsilon=0.5), clock.now())
    rewrite(engine, 0, lambda e: e.update(details="not an object"), fix_hash=True)
    assert failure(engine).startswith("index 0: an allowed query without service, purpose, dataset and details.period")
    rewrite(engine, 1, lambda e: e.update(seq=True), fix_hash=True)  # true == 1 in Python, not in the log
    rewrite(engine, 0, lambda e: e.update(details={}), fix_hash=True)
    assert failure(engine).startswith("index 0: an allowed query without")
    execute(engine, "UPDATE audit_entry SET action = 'test.event' WHERE seq = 0")
    rewrite(engine, 0, lambda e: e.update(action="test.event"), fix_hash=True)
    assert failure(engine).startswith("index 1: the entry says it is entry True")
