"""RFC 7523 §2.2 and §3: client authentication with a JWT signed by the client's own key (``private_key_jwt``).
https://www.rfc-editor.org/rfc/rfc7523

authlib's :class:`JWTBearerClientAssertion` does the work, through joserfc. The broker tightens what authlib
leaves open:

* **Algorithms**: authlib decodes with whatever joserfc recommends, HS256 included. An HS256 assertion "signed"
  with the client's *public* key (the classic key-confusion attack) already fails in joserfc because an EC or
  RSA key is no HMAC key; the allow-list of asymmetric algorithms makes that a rule rather than a side effect.
* **Lifetime**: an assertion valid for more than :data:`MAX_ASSERTION_LIFETIME` (``exp - iat``, or
  ``exp - now`` without ``iat``) is refused, so a leaked assertion is worth little and the replay store
  stays small. Note that authlib's own client signs one-hour assertions by default: pass ``expires_in``.
* **Replay** (§3, item 7): each ``jti`` is recorded in the database until the assertion expires, so a replay
  is refused by every worker, not only the one that saw it first. The jti of an assertion that verified is
  recorded whatever the outcome of the request (an ``invalid_scope`` too), so it can never be used twice.
* **Time** comes from the broker's clock, like every other expiry check.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from authlib.oauth2.rfc6749 import InvalidClientError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from broker.oauth import store
from broker.oauth.clients import ASSERTION_ALGORITHMS, PRIVATE_KEY_JWT, BrokerClient
from broker.oauth.errors import safe_description

MAX_ASSERTION_LIFETIME = 300
#: Allowance for clock skew between a client and the broker (RFC 7519 §4.1.4 "a few minutes" at most).
LEEWAY = 30
MAX_JTI_LENGTH = 255


class PrivateKeyJWT(JWTBearerClientAssertion):
    CLIENT_AUTH_METHOD = PRIVATE_KEY_JWT

    def __init__(self, audiences: list[str], now: Callable[[], int]) -> None:
        super().__init__(validate_jti=True, leeway=LEEWAY)
        self._audiences = audiences
        self._now = now

    def get_audiences(self) -> list[str]:
        """RFC 7523 §3: the issuer identifier, or any endpoint URL the assertion is presented to."""
        return self._audiences

    def resolve_client_public_key(self, client: BrokerClient) -> KeySet:
        keys = client.public_keys()
        if keys is None:
            raise InvalidClientError(description="The client has no public key registered.")
        return keys

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> dict[str, Any]:
        # authlib's version, with the algorithm allow-list it does not pass.
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=list(ASSERTION_ALGORITHMS))
        except JoseError as exc:
            raise InvalidClientError(description=safe_description(exc.description or exc.error)) from exc
        self.verify_claims(token.claims)
        return token.claims

    def verify_claims(self, claims: dict[str, Any]) -> None:
        registry = jwt.JWTClaimsRegistry(
            now=self._now, leeway=self.leeway,
            iss={"essential": True}, sub={"essential": True}, exp={"essential": True}, jti={"essential": True},
            aud={"essential": True, "values": self.get_audiences()},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise InvalidClientError(description=safe_description(exc.description or exc.error)) from exc
        if claims["sub"] != claims["iss"]:
            raise InvalidClientError(description="Issuer and Subject MUST match.")
        start = claims.get("iat", self._now())
        if not isinstance(start, int | float) or claims["exp"] - start > MAX_ASSERTION_LIFETIME:
            raise InvalidClientError(
                description=f"The assertion may be valid for at most {MAX_ASSERTION_LIFETIME} seconds.")
        if not isinstance(claims["jti"], str) or len(claims["jti"]) > MAX_JTI_LENGTH:
            raise InvalidClientError(description="Invalid JWT ID.")
        if not self.validate_jti(claims, claims["jti"]):
            raise InvalidClientError(description="JWT ID is used before.")

    def validate_jti(self, claims: dict[str, Any], jti: str) -> bool:
        # Queued with the request's other writes and decided at commit by the table's primary key, which also
        # settles a race between two workers (broker.oauth.store): a replay answers invalid_client then.
        # Kept a little past ``exp`` (store.PURGE_GRACE), since the leeway still accepts it for that long.
        store.current().writes.assertion = {"client_id": claims["sub"], "jti": jti,
                                            "expires_at": datetime.fromtimestamp(claims["exp"], UTC)}
        return True
