"""RFC 9068: JWT profile for OAuth 2.0 access tokens. https://www.rfc-editor.org/rfc/rfc9068

Every access token is a JWT (header ``typ: at+jwt``, §2.1) signed ES256 by the broker's current key, with its
``kid``, valid for :data:`ACCESS_TOKEN_LIFETIME` seconds, carrying (§2.2) ``iss`` (settings.issuer),
``aud`` (:func:`resource_identifier`), ``sub`` and ``client_id`` (the client), ``iat``, ``exp``, ``jti``,
``scope`` and, when asked for (RFC 9396), ``authorization_details``.

**Audience.** ``aud`` is the broker's API, ``<issuer>/v1``, not the issuer itself: the authorization server
and the resource server happen to share an origin today, and naming the resource keeps a token for the API
apart from anything meant for the authorization server (client assertions name the issuer), and leaves room
for a resource server of its own later (RFC 8707).

authlib's generator and validator do the work; the broker adds what their defaults leave out:

* **Time**: authlib stamps ``iat``/``exp`` from ``time.time()``; the broker's clock decides instead (every
  worker and every test agree), passed as extra claims, which authlib applies last.
* **Validation** (§4): authlib decodes with any algorithm joserfc recommends and accepts a token with no
  ``typ`` at all. Here the algorithm is pinned to ES256, the key must be one of ours by ``kid``, ``typ`` must
  be ``at+jwt``, and the token must be on record, unrevoked, for a client still enabled (the database says
  so, so revocation holds on every worker).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from typing import Any

from authlib.oauth2.rfc6749 import TokenMixin
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oauth2.rfc6750 import InsufficientScopeError, InvalidTokenError
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator, JWTBearerTokenValidator
from authlib.oauth2.rfc9068.claims import JWTAccessTokenClaims
from joserfc import jwt
from joserfc.errors import ClaimError, ExpiredTokenError, JoseError

from broker.oauth.clients import BrokerClient
from broker.oauth.errors import REALM, safe_description
from broker.oauth.signing import SigningKeys
from broker.oauth.store import TokenState
from broker.policy import Policy
from broker.scopes import client_scopes, satisfies

ACCESS_TOKEN_LIFETIME = 300
TOKEN_TYPES = ("at+jwt", "application/at+jwt")
ALGORITHMS = ["ES256"]
#: Tolerated difference between the clocks of two workers, for ``iat``.
CLOCK_SKEW = 30


def resource_identifier(issuer: str) -> str:
    """The audience of every access token: the broker's API."""
    return issuer.rstrip("/") + "/v1"


class AccessTokenGenerator(JWTBearerTokenGenerator):
    def __init__(self, *, issuer: str, resource: str, keys: SigningKeys, now: Callable[[], int]) -> None:
        super().__init__(issuer=issuer, alg="ES256", expires_generator=ACCESS_TOKEN_LIFETIME)
        self._resource = resource
        self._keys = keys
        self._now = now

    def get_jwks(self) -> Any:
        return self._keys.signing_keyset()

    def get_audiences(self, client: BrokerClient, user: object, scope: str) -> str:
        return self._resource

    def get_jti(self, client: BrokerClient, grant_type: str, user: object, scope: str) -> str:
        return secrets.token_urlsafe(16)  # 128 random bits

    def get_extra_claims(self, client: BrokerClient, grant_type: str, user: object, scope: str) -> dict[str, Any]:
        now = self._now()
        claims: dict[str, Any] = {"iat": now, "exp": now + ACCESS_TOKEN_LIFETIME}
        if client.grant is not None and client.grant.authorization_details:
            claims["authorization_details"] = list(client.grant.authorization_details)
        return claims

    def generate(self, grant_type: str, client: BrokerClient, user: object = None, scope: str | None = None,
                 expires_in: int | None = None, include_refresh_token: bool = True) -> dict[str, Any]:
        token: dict[str, Any] = super().generate(grant_type, client, user, scope, expires_in, include_refresh_token)
        if client.grant is not None and client.grant.authorization_details:
            token["authorization_details"] = list(client.grant.authorization_details)  # RFC 9396 §7
        return token


class AccessTokenClaims(JWTAccessTokenClaims):
    """authlib's RFC 9068 claims, plus what the database said about the token."""

    state: TokenState | None = None
    effective_scopes: frozenset[str] = frozenset()

    @property
    def scopes(self) -> list[str]:
        return scope_to_list(self.get("scope")) or []


class AccessTokenValidator(JWTBearerTokenValidator):
    def __init__(self, *, issuer: str, resource: str, keys: SigningKeys, now: Callable[[], int],
                 state: Callable[[str], TokenState | None], policy: Policy) -> None:
        super().__init__(issuer=issuer, resource_server=resource, realm=REALM)
        self._keys = keys
        self._now = now
        self._state = state
        self._policy = policy

    def decode(self, token_string: str) -> AccessTokenClaims:
        """Signature (ES256, a key of ours by kid) and ``typ``; the claims are not checked yet."""
        try:
            token = jwt.decode(token_string, lambda obj: self._keys.verification_key(obj.headers().get("kid")),
                               algorithms=ALGORITHMS)
        except (JoseError, ValueError) as exc:
            raise InvalidTokenError("The token is malformed or its signature does not verify.",
                                    realm=self.realm) from exc
        typ = token.header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in TOKEN_TYPES:
            raise InvalidTokenError("The token is not an access token (typ at+jwt).", realm=self.realm)
        return AccessTokenClaims(token.claims, token.header, self._claims_options())

    def _claims_options(self) -> dict[str, Any]:
        essential = {"essential": True}
        return {
            "iss": {"essential": True, "value": self.issuer},
            "aud": {"essential": True, "value": self.resource_server},
            "exp": essential, "iat": essential, "jti": essential, "sub": essential, "client_id": essential,
        }

    def check_claims(self, token: AccessTokenClaims) -> None:
        """§4 items 3-6: issuer, audience, expiry, with the broker's clock.

        ``iat`` gets :data:`CLOCK_SKEW` of leeway, so a token fresh from a worker whose clock runs a little
        ahead is not "issued in the future" here; ``exp`` gets none, so a token never outlives its lifetime.
        """
        now = self._now()
        try:
            token.validate(now=now, leeway=CLOCK_SKEW)
            if int(token["exp"]) <= now:
                raise ExpiredTokenError("exp")
        except ExpiredTokenError as exc:
            raise InvalidTokenError("The token has expired.", realm=self.realm) from exc
        except ClaimError as exc:
            raise InvalidTokenError(safe_description(f"The token's {exc.claim} claim is not acceptable."),
                                    realm=self.realm) from exc
        if not isinstance(token["jti"], str) or token.get("sub") != token.get("client_id"):
            raise InvalidTokenError("The token's jti, sub or client_id claim is not acceptable.", realm=self.realm)

    # -- authlib's TokenValidator ---------------------------------------------------------------------------
    def authenticate_token(self, token_string: str) -> AccessTokenClaims:
        return self.decode(token_string)

    def validate_token(self, token: AccessTokenClaims, scopes: Iterable[str] | None, request: object,
                       **_: object) -> None:
        self.check_claims(token)
        state = self._state(token["jti"])
        if state is None or state.client_id != token["client_id"]:
            raise InvalidTokenError("The broker has no record of this token.", realm=self.realm)
        if state.revoked:
            raise InvalidTokenError("The token has been revoked.", realm=self.realm)
        if state.client_disabled:
            raise InvalidTokenError("The client has been disabled.", realm=self.realm)
        token.state = state
        token.effective_scopes = self.effective_scopes(token)
        if not satisfies(token.effective_scopes, scopes or ()):
            raise InsufficientScopeError()

    def effective_scopes(self, token: AccessTokenClaims) -> frozenset[str]:
        """The token's scopes that the policy still grants its client: a purpose withdrawn from a service, or
        suspended, stops counting at once rather than when the token expires."""
        service = self._policy.service(token.state.service_id) if token.state else None
        if service is None:
            return frozenset()
        return frozenset(token.scopes) & client_scopes(service, self._policy)


class IssuedAccessToken(TokenMixin):
    """An access token presented to introspection or revocation (authlib's TokenMixin)."""

    def __init__(self, claims: AccessTokenClaims, state: TokenState | None, now: int) -> None:
        self.claims = claims
        self.state = state
        self._now = now

    @property
    def jti(self) -> str:
        return self.claims["jti"]

    def check_client(self, client: BrokerClient) -> bool:
        return self.claims.get("client_id") == client.get_client_id()

    def get_scope(self) -> str:
        return self.claims.get("scope", "")

    def get_expires_in(self) -> int:
        return int(self.claims["exp"]) - int(self.claims["iat"])

    def is_expired(self) -> bool:
        return int(self.claims["exp"]) <= self._now

    def is_revoked(self) -> bool:
        return self.state is None or not self.state.usable


def read_issued_token(validator: AccessTokenValidator, token_string: str,
                      state: Callable[[str], TokenState | None], now: int) -> IssuedAccessToken | None:
    """A token this broker issued (our signature, ``typ``, issuer, audience), whether expired or not; else None.

    RFC 7009 §2.2 and RFC 7662 §2.2 answer a token that is not ours like an inactive one, so no error here.
    """
    try:
        claims = validator.decode(token_string)
        try:
            claims.validate(now=now, leeway=CLOCK_SKEW)
        except ExpiredTokenError:
            # Expired is an answer (inactive), not a reason to stop: check the rest as of its issue time.
            claims.validate(now=int(claims["iat"]), leeway=CLOCK_SKEW)
    except (InvalidTokenError, JoseError, KeyError, TypeError, ValueError):
        return None
    if not isinstance(claims["jti"], str):
        return None
    return IssuedAccessToken(claims, state(claims["jti"]), now)
