"""A hypothesis state machine: append (some appends roll back), checkpoint, prove, verify, in any order."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import rfc8785
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlalchemy import text
from sqlmodel import SQLModel

from broker.audit import AuditEvent, record
from broker.audit.checkpoints import Checkpoint, read_checkpoint
from broker.audit.integrator import integrate
from broker.audit.models import AuditCheckpoint, AuditEntry, AuditNode, AuditState
from broker.audit.service import AuditLog
from broker.audit.sources import verify_database
from broker.db import make_engine, session_scope
from broker.keymodels import SigningKey
from broker.keys import KeyRing, Secrets, ensure_signing_key
from broker.timeutil import FixedClock
from tests.audit import reference

TABLES = [t.__table__ for t in (AuditEntry, AuditNode, AuditCheckpoint, AuditState, SigningKey)]
details = st.dictionaries(st.sampled_from(["n", "label", "ratio", "flag"]),
                          st.one_of(st.integers(-1000, 1000), st.text(max_size=8),
                                    st.floats(0.0001, 1e6, allow_nan=False), st.booleans()), max_size=3)


class AuditLogMachine(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="audit-machine-"))
        self.engine = make_engine(f"sqlite:///{self.directory / 'log.db'}")
        SQLModel.metadata.create_all(self.engine, tables=TABLES)
        self.secrets = Secrets(master_key=os.urandom(32), pepper=os.urandom(32))
        self.clock = FixedClock(datetime(2026, 3, 2, 9, 30, tzinfo=UTC))
        with session_scope(self.engine) as session:
            ensure_signing_key(session, self.secrets, self.clock.now())
        with session_scope(self.engine) as session:
            self.jwks = KeyRing.load(session, self.secrets).jwks()
        self.log = AuditLog(self.engine, self.secrets, self.clock)
        self.leaves: list[bytes] = []  # the model: leaf hashes of committed entries, in order
        self.kept: list[Checkpoint] = []

    def teardown(self) -> None:
        if hasattr(self, "engine"):
            self.engine.dispose()
            shutil.rmtree(self.directory, ignore_errors=True)

    @rule(events=st.lists(details, min_size=1, max_size=4), roll_back=st.booleans(), seconds=st.integers(-2, 3))
    def append(self, events: list[dict[str, object]], roll_back: bool, seconds: int) -> None:
        self.clock.advance(seconds=seconds)  # clocks may step back: the log's time must not
        written = []
        try:
            with session_scope(self.engine) as session:
                for event in events:
                    seq = record(session, AuditEvent(actor="system", action="test.event", details=event),
                                 self.clock.now())
                    written.append(seq)
                if roll_back:
                    raise RuntimeError("the action failed after logging")
        except RuntimeError:
            return
        assert written == list(range(len(self.leaves), len(self.leaves) + len(events)))
        with self.engine.connect() as connection:
            bodies = connection.execute(text("SELECT body FROM audit_entry WHERE seq >= :n ORDER BY seq"),
                                        {"n": len(self.leaves)}).scalars().all()
        for body, event in zip(bodies, events, strict=True):
            entry = json.loads(body)
            assert entry["details"] == event if event else "details" not in entry
            self.leaves.append(reference.leaf(rfc8785.dumps(entry)))

    @rule()
    def checkpoint(self) -> None:
        signed = integrate(self.engine, self.secrets, self.clock)
        if signed is None:
            assert self.kept and self.kept[-1].tree_size == len(self.leaves)
            return
        checkpoint = read_checkpoint(signed.jws, self.jwks)  # the signature, as anyone would check it
        assert checkpoint.tree_size == len(self.leaves)
        assert checkpoint.root == reference.mth(self.leaves)
        if self.kept:
            assert checkpoint.timestamp >= self.kept[-1].timestamp
        self.kept.append(checkpoint)

    @precondition(lambda self: any(c.tree_size for c in self.kept))
    @rule(data=st.data())
    def prove_inclusion(self, data: st.DataObject) -> None:
        checkpoint = data.draw(st.sampled_from([c for c in self.kept if c.tree_size]))
        index = data.draw(st.integers(0, checkpoint.tree_size - 1))
        proof = self.log.inclusion(index, checkpoint.tree_size)
        assert proof.leaf_hash == self.leaves[index]
        assert reference.verify_inclusion(index, checkpoint.tree_size, self.leaves[index], proof.inclusion_path,
                                          checkpoint.root)

    @precondition(lambda self: len(self.kept) >= 2)
    @rule(data=st.data())
    def prove_consistency(self, data: st.DataObject) -> None:
        older, newer = sorted(data.draw(st.lists(st.sampled_from(self.kept), min_size=2, max_size=2)),
                              key=lambda c: c.tree_size)
        proof = self.log.consistency(older.tree_size, newer.tree_size)
        if older.tree_size == 0:
            assert proof.consistency_path == []
            return
        assert reference.verify_consistency(older.tree_size, newer.tree_size, older.root, newer.root,
                                            proof.consistency_path)

    @rule()
    def verify(self) -> None:
        report = verify_database(self.engine, [c.jws for c in self.kept], self.jwks)
        assert report.ok, report.finding

    @invariant()
    def sequence_is_gap_free(self) -> None:
        if hasattr(self, "engine"):
            with self.engine.connect() as connection:
                seqs = connection.execute(text("SELECT seq FROM audit_entry ORDER BY seq")).scalars().all()
            assert seqs == list(range(len(self.leaves)))


AuditLogMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=15, deadline=None)
test_audit_log_state_machine = AuditLogMachine.TestCase
