"""Signed checkpoints: ``{tree_size, root_hash, timestamp}`` as a compact JWS (ES256, ``kid``), DESIGN §6.

A checkpoint is the broker's signed statement "the log had ``tree_size`` entries and this root at this time".
Anyone may keep copies (``GET /v1/audit/checkpoint`` is public); an auditor who kept an old one later asks for
a consistency proof to the newest, and a log rewritten since then cannot produce it, whatever keys it holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from joserfc import jws
from sqlalchemy import Connection, select

from broker.audit.models import AuditCheckpoint
from broker.errors import BrokerError
from broker.keys import KeyRing, verify_compact

CHECKPOINT_TYP = "audit-checkpoint+jwt"
_HEX256 = re.compile(r"^[0-9a-f]{64}$")
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
_CHECKPOINTS = AuditCheckpoint.__table__


class CheckpointInvalid(BrokerError):
    code, status, title = "checkpoint-invalid", 400, "Not a valid checkpoint"


@dataclass(frozen=True)
class Checkpoint:
    tree_size: int
    root_hash: str  # hex
    timestamp: str  # RFC 3339, UTC, microseconds
    kid: str
    jws: str

    @property
    def root(self) -> bytes:
        return bytes.fromhex(self.root_hash)

    def payload(self) -> dict[str, Any]:
        return {"tree_size": self.tree_size, "root_hash": self.root_hash, "timestamp": self.timestamp}


def sign_checkpoint(keyring: KeyRing, tree_size: int, root: bytes, timestamp: str) -> Checkpoint:
    payload = {"tree_size": tree_size, "root_hash": root.hex(), "timestamp": timestamp}
    token = keyring.sign(payload, typ=CHECKPOINT_TYP)
    return Checkpoint(tree_size=tree_size, root_hash=root.hex(), timestamp=timestamp, kid=keyring.current_kid,
                      jws=token)


def check_payload(payload: Any) -> tuple[int, str, str]:
    """The payload's three fields, or CheckpointInvalid: nothing more, nothing less, each of its type."""
    if not isinstance(payload, dict) or set(payload) != {"tree_size", "root_hash", "timestamp"}:
        raise CheckpointInvalid("a checkpoint holds exactly tree_size, root_hash and timestamp")
    size, root, moment = payload["tree_size"], payload["root_hash"], payload["timestamp"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise CheckpointInvalid("tree_size is not a non-negative integer")
    if not isinstance(root, str) or not _HEX256.match(root):
        raise CheckpointInvalid("root_hash is not 64 lowercase hex digits")
    if not isinstance(moment, str) or not _TIMESTAMP.match(moment):
        raise CheckpointInvalid("timestamp is not RFC 3339 UTC with microseconds")
    return size, root, moment


def read_checkpoint(token: str, jwks: dict[str, Any]) -> Checkpoint:
    """Verify ``token`` against ``jwks`` (offline) and decode it; SignatureInvalid or CheckpointInvalid."""
    payload = verify_compact(token, jwks, typ=CHECKPOINT_TYP)
    size, root, moment = check_payload(payload)
    kid = jws.extract_compact(token.encode()).headers().get("kid", "")
    return Checkpoint(tree_size=size, root_hash=root, timestamp=moment, kid=str(kid), jws=token)


def _of(row: Any) -> Checkpoint:
    return Checkpoint(tree_size=row.tree_size, root_hash=row.root_hash, timestamp=row.timestamp, kid=row.kid,
                      jws=row.jws)


def latest(connection: Connection) -> Checkpoint | None:
    row = connection.execute(select(_CHECKPOINTS).order_by(_CHECKPOINTS.c.tree_size.desc()).limit(1)).first()
    return _of(row) if row is not None else None


def at_size(connection: Connection, tree_size: int) -> Checkpoint | None:
    row = connection.execute(select(_CHECKPOINTS).where(_CHECKPOINTS.c.tree_size == tree_size)).first()
    return _of(row) if row is not None else None


def every(connection: Connection) -> list[Checkpoint]:
    return [_of(row) for row in connection.execute(select(_CHECKPOINTS).order_by(_CHECKPOINTS.c.tree_size))]


def store(connection: Connection, checkpoint: Checkpoint) -> None:
    connection.execute(_CHECKPOINTS.insert().values(
        tree_size=checkpoint.tree_size, root_hash=checkpoint.root_hash, timestamp=checkpoint.timestamp,
        kid=checkpoint.kid, jws=checkpoint.jws))
