"""The broker's secrets and keys.

* The **master key** (AES-256) wraps every citizen's data key (RFC 3394 key wrap) and the private halves of
  the signing keys. It comes from ``BROKER_MASTER_KEY`` or a file created on first run with mode 0600.
* The **pepper** keys the HMAC-SHA256 pseudonyms; without it a pseudonym cannot be linked back to a citizen.
* **Data keys**: one AES-256-GCM key per citizen encrypts their direct identifiers. Destroying the wrapped
  data key is crypto-shredding: the ciphertext stays (in backups too) but nobody can read it any more.
* **Signing keys**: ES256 (P-256) keys with a ``kid``, kept in the database so that every worker signs and
  verifies with the same keys; the public halves are served as a JWKS for offline verification.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap, aes_key_wrap
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet
from sqlmodel import Session, col, select

from broker.errors import BrokerError
from broker.keymodels import SigningKey
from broker.settings import Settings
from broker.timeutil import as_utc

NONCE_BYTES = 12


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _secret(value: str | None, path: Path) -> bytes:
    """A 32-byte secret from the environment, else from ``path``, created with mode 0600 if absent."""
    if value:
        raw = unb64u(value.strip())
        if len(raw) != 32:
            raise ValueError(f"{path.stem} must be 32 bytes, base64url-encoded")
        return raw
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        # O_EXCL: two processes starting together must not each write a different key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raw = unb64u(path.read_text().strip())
        if len(raw) != 32:
            raise ValueError(f"{path} does not hold a 32-byte base64url key") from None
        return raw
    raw = secrets.token_bytes(32)
    with os.fdopen(fd, "w") as handle:
        handle.write(b64u(raw) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return raw


@dataclass(frozen=True)
class Secrets:
    master_key: bytes
    pepper: bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> Secrets:
        master = settings.master_key.get_secret_value() if settings.master_key else None
        pepper = settings.pepper.get_secret_value() if settings.pepper else None
        return cls(
            master_key=_secret(master, settings.keys_dir / "master.key"),
            pepper=_secret(pepper, settings.keys_dir / "pepper.key"),
        )

    def __repr__(self) -> str:  # never print secrets, even by accident in a traceback
        return "Secrets(<redacted>)"

    # -- pseudonyms -------------------------------------------------------------------------------------
    def pseudonym(self, citizen_id: str) -> str:
        return hmac.new(self.pepper, b"citizen:" + citizen_id.encode(), hashlib.sha256).hexdigest()

    def email_index(self, email: str) -> str:
        """A blind index to find an account by email without storing the email in clear."""
        normalised = email.strip().lower().encode()
        return hmac.new(self.pepper, b"email:" + normalised, hashlib.sha256).hexdigest()

    # -- data keys ----------------------------------------------------------------------------------------
    def new_wrapped_data_key(self) -> tuple[bytes, bytes]:
        """A fresh data key and its wrapped form (what is stored)."""
        key = AESGCM.generate_key(bit_length=256)
        return key, aes_key_wrap(self.master_key, key)

    def unwrap(self, wrapped: bytes) -> bytes:
        return aes_key_unwrap(self.master_key, wrapped)

    def seal(self, plaintext: bytes, *, aad: bytes, key: bytes | None = None) -> bytes:
        """AES-GCM under ``key`` (default: the master key); ``aad`` binds the ciphertext to its owner and field."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + AESGCM(key or self.master_key).encrypt(nonce, plaintext, aad)

    def open(self, sealed: bytes, *, aad: bytes, key: bytes | None = None) -> bytes:
        return AESGCM(key or self.master_key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)


class SignatureInvalid(BrokerError):
    code = "signature-invalid"
    status = 400
    title = "Signature does not verify"


def _thumbprint_kid(key: ECKey) -> str:
    return key.thumbprint()


def create_signing_key(session: Session, secrets_: Secrets, now: datetime) -> SigningKey:
    key = ECKey.generate_key("P-256", private=True)
    kid = _thumbprint_kid(key)
    public = key.as_dict(private=False)
    public.update({"kid": kid, "use": "sig", "alg": "ES256"})
    private_pem = key.as_pem(private=True)
    row = SigningKey(
        kid=kid,
        created_at=now,
        public_jwk=json.dumps(public, sort_keys=True),
        private_wrapped=secrets_.seal(private_pem, aad=b"signing-key:" + kid.encode()),
    )
    session.add(row)
    session.flush()
    return row


class KeyRing:
    """The broker's signing keys: the newest live key signs; live keys verify access tokens; every key,
    retired ones included, is published in the JWKS.

    Retired keys stay published because receipts and checkpoints are verified offline for years after they
    were signed; an access token signed by a retired key has expired by construction (see
    :func:`rotate_signing_key`), and the token guard verifies against live keys only.
    """

    def __init__(self, rows: list[SigningKey], secrets_: Secrets) -> None:
        live = sorted((r for r in rows if r.retired_at is None), key=lambda r: as_utc(r.created_at), reverse=True)
        if not live:
            raise LookupError("no signing key: run `consent-broker db upgrade`")
        retired = sorted((r for r in rows if r.retired_at is not None), key=lambda r: as_utc(r.created_at),
                         reverse=True)
        self._rows = live
        self._published = live + retired
        current = live[0]
        pem = secrets_.open(current.private_wrapped, aad=b"signing-key:" + current.kid.encode())
        self._signer = ECKey.import_key(pem, {"kid": current.kid})
        self._public = KeySet([ECKey.import_key(json.loads(r.public_jwk)) for r in live])

    @classmethod
    def load(cls, session: Session, secrets_: Secrets) -> KeyRing:
        return cls(list(session.exec(select(SigningKey)).all()), secrets_)

    @property
    def current_kid(self) -> str:
        return self._rows[0].kid

    @property
    def live_kids(self) -> list[str]:
        """Keys that sign (the first) or verify access tokens, newest first."""
        return [r.kid for r in self._rows]

    @property
    def signer(self) -> ECKey:
        """The private key that signs now (its ``kid`` set), for code that signs through joserfc itself."""
        return self._signer

    @property
    def public_keys(self) -> KeySet:
        """Every key in force, for verification: the current one and those not yet retired."""
        return self._public

    def jwks(self) -> dict[str, Any]:
        """All public keys, live first, for offline verification of anything the broker ever signed."""
        return {"keys": [json.loads(r.public_jwk) for r in self._published]}

    def sign(self, payload: dict[str, Any], *, typ: str = "JWT") -> str:
        header = {"alg": "ES256", "kid": self.current_kid, "typ": typ}
        return jws.serialize_compact(header, canonical_json(payload), self._signer, algorithms=["ES256"])


def ensure_signing_key(session: Session, secrets_: Secrets, now: datetime) -> None:
    if session.exec(select(SigningKey).where(col(SigningKey.retired_at).is_(None))).first() is None:
        create_signing_key(session, secrets_, now)


class RotationTooSoon(BrokerError):
    code, status, title = "rotation-too-soon", 409, "Key rotation too soon"


@dataclass(frozen=True)
class Rotation:
    created: str
    retired: list[str]


def rotate_signing_key(session: Session, secrets_: Secrets, now: datetime, *, token_lifetime: timedelta,
                       leeway: timedelta = timedelta(seconds=60)) -> Rotation:
    """Add a signing key (it signs from now on) and retire the keys nothing valid can depend on any more.

    A key stops signing when its successor is created, so the last token it signed expires at most
    ``token_lifetime`` later; past that (plus ``leeway`` for clock skew between workers) it is retired and
    leaves the JWKS. So at most two keys are live: the current one and the one before it, while tokens the
    latter signed may still be presented. A rotation that would leave three live keys (the previous
    rotation was less than ``token_lifetime + leeway`` ago) is refused rather than cut those tokens short.
    """
    rows = sorted(session.exec(select(SigningKey).where(col(SigningKey.retired_at).is_(None))).all(),
                  key=lambda r: as_utc(r.created_at), reverse=True)
    window = token_lifetime + leeway
    # rows[i + 1] was superseded when rows[i] was created.
    retire = [older for newer, older in itertools.pairwise(rows) if now - as_utc(newer.created_at) >= window]
    if len(rows) - len(retire) + 1 > 2:
        ready = as_utc(rows[0].created_at) + window
        raise RotationTooSoon(f"the current key {rows[0].kid} signed tokens that may still be valid; "
                              f"rotate again after {ready.isoformat()}")
    created = create_signing_key(session, secrets_, now)
    for row in retire:
        row.retired_at = now
        session.add(row)
    session.flush()
    return Rotation(created=created.kid, retired=[r.kid for r in retire])


def verify_compact(token: str, jwks: dict[str, Any], *, typ: str | None = None) -> dict[str, Any]:
    """Verify a compact JWS against a JWKS, offline; returns the payload.

    Only ES256 is accepted: the algorithm comes from our allow-list, never from the token's header alone.
    """
    try:
        key_set = KeySet.import_key_set(jwks)
        obj = jws.deserialize_compact(token, key_set, algorithms=["ES256"])
    except (JoseError, ValueError, KeyError) as exc:
        raise SignatureInvalid("the signature does not verify against the published keys") from exc
    if typ is not None and obj.protected.get("typ") != typ:
        raise SignatureInvalid(f"expected a token of type {typ}")
    return json.loads(obj.payload)


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) canonical JSON: the same document always hashes and signs the same."""
    import rfc8785

    return rfc8785.dumps(value)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
