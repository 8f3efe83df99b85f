"""OAuth clients as authlib sees them: a registered row (credentials) joined to its service in the policy (rights).

``policies/services.yaml`` decides what a client may do and how it must authenticate; the database only holds
its credentials. A client whose service left the policy, or that was disabled, does not exist for the server.

Authentication methods: the service's ``auth_method`` is the *weakest* the policy accepts for it, and a client
may only use a method whose credential is registered. A ``private_key_jwt`` service can never fall back to a
shared secret (which a leak or a proxy log could expose); a ``client_secret_basic`` service may also use a key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol

from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc6749.util import list_to_scope
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from broker.identity.passwords import verify_password
from broker.keys import unb64u
from broker.policy import Policy, Service
from broker.scopes import client_scopes

PRIVATE_KEY_JWT = "private_key_jwt"
CLIENT_SECRET_BASIC = "client_secret_basic"
#: For each policy ``auth_method``, the methods at least as strong.
ACCEPTED_METHODS: dict[str, frozenset[str]] = {
    PRIVATE_KEY_JWT: frozenset({PRIVATE_KEY_JWT}),
    CLIENT_SECRET_BASIC: frozenset({CLIENT_SECRET_BASIC, PRIVATE_KEY_JWT}),
}
#: Client assertion algorithms: asymmetric only, so nothing verifies with material the broker could leak.
ASSERTION_ALGORITHMS = ("ES256", "PS256", "RS256")
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


class InvalidClientKeys(ValueError):
    """A JWKS that must not be registered (private material, a weak or unsupported key)."""


def parse_client_jwks(text: str) -> KeySet:
    """Check and import a client's public JWKS: EC P-256 or RSA >= 2048 bits, public halves only."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidClientKeys("the JWKS is not JSON") from exc
    keys = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(keys, list) or not keys:
        raise InvalidClientKeys('a JWKS is an object with a non-empty "keys" array')
    kids = [k.get("kid") for k in keys if isinstance(k, dict)]
    if len(keys) > 1 and (None in kids or len(set(kids)) != len(kids)):
        raise InvalidClientKeys("with several keys, each needs its own kid")
    for jwk in keys:
        if not isinstance(jwk, dict):
            raise InvalidClientKeys("each key is a JSON object")
        if _PRIVATE_MEMBERS & set(jwk):
            raise InvalidClientKeys("the JWKS holds private key material: register the public keys only")
        if jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
            continue
        if jwk.get("kty") == "RSA" and len(_b64_bytes(jwk.get("n", ""))) * 8 >= 2048:
            continue
        raise InvalidClientKeys("only EC P-256 keys and RSA keys of 2048 bits or more are accepted")
    try:
        return KeySet.import_key_set(data)
    except (JoseError, ValueError, TypeError) as exc:
        raise InvalidClientKeys("the JWKS does not import") from exc


def _b64_bytes(text: object) -> bytes:
    try:
        return unb64u(text) if isinstance(text, str) else b""
    except ValueError:
        return b""


@lru_cache(maxsize=512)
def _cached_keyset(text: str) -> KeySet:
    # Pure function of the stored text, so caching is safe: a rotated JWKS is a different text.
    return KeySet.import_key_set(json.loads(text))


@dataclass
class Grant:
    """What the token endpoint decided to grant, once the request has been checked."""

    scopes: tuple[str, ...]
    authorization_details: tuple[dict[str, Any], ...] = ()


class RegisteredClient(Protocol):
    """What the server needs of a registered client: an OAuthClient, or a row of its table."""

    client_id: str
    service_id: str
    jwks: str | None
    secret_hash: str | None
    disabled_at: datetime | None


class BrokerClient(ClientMixin):
    """One registered client for the span of one request (authlib's ClientMixin)."""

    def __init__(self, row: RegisteredClient, service: Service, policy: Policy) -> None:
        self.row = row
        self.service = service
        self.policy = policy
        self.allowed_scopes = client_scopes(service, policy)
        registered = {PRIVATE_KEY_JWT} if row.jwks else set()
        if row.secret_hash:
            registered.add(CLIENT_SECRET_BASIC)
        self.auth_methods = ACCEPTED_METHODS[service.auth_method] & registered
        self.grant: Grant | None = None

    @property
    def client_id(self) -> str:
        return self.row.client_id

    def public_keys(self) -> KeySet | None:
        return _cached_keyset(self.row.jwks) if self.row.jwks else None

    # -- authlib's ClientMixin ------------------------------------------------------------------------------
    def get_client_id(self) -> str:
        return self.row.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in self.auth_methods

    def check_client_secret(self, client_secret: str) -> bool:
        # Checked before the method itself (authlib's order): refuse first, so a private_key_jwt client's
        # secret (from an earlier registration, say) is never even tried, and costs no argon2 run.
        if CLIENT_SECRET_BASIC not in self.auth_methods:
            return False
        return verify_password(self.row.secret_hash, client_secret)

    def get_allowed_scope(self, scope: str | None) -> str:
        # The grant checked the request and recorded what it grants; authlib's own narrowing (silently
        # dropping what is not allowed) never runs: a scope the client may not have is an error instead.
        if self.grant is None:
            raise RuntimeError("scope requested before the token request was checked")
        return list_to_scope(list(self.grant.scopes))


def load_client(row: RegisteredClient | None, policy: Policy) -> BrokerClient | None:
    """The client of a registered row, or None if there is none, it is disabled, or its service is no longer
    in the policy. The three look alike from outside on purpose: the answer is ``invalid_client`` either way.
    """
    if row is None or row.disabled_at is not None:
        return None
    service = policy.service(row.service_id)
    if service is None:
        return None
    return BrokerClient(row, service, policy)
