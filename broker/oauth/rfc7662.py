"""RFC 7662: OAuth 2.0 token introspection. https://www.rfc-editor.org/rfc/rfc7662

authlib's :class:`IntrospectionEndpoint` over the broker's own access tokens. A client authenticates (§2.1)
and may introspect the tokens issued to itself only; for any other token, an expired, revoked or foreign one,
or a token of a disabled client, the answer is ``{"active": false}`` and nothing more (§2.2). A live token's
answer repeats its claims, RFC 9396 ``authorization_details`` included (RFC 9396 §9.2).

authlib's JWT flavour (``rfc9068.JWTIntrospectionEndpoint``) is not used: it reads no revocation state and
stamps time with ``time.time()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from authlib.oauth2.rfc7662 import IntrospectionEndpoint as _IntrospectionEndpoint

from broker.oauth.clients import CLIENT_SECRET_BASIC, PRIVATE_KEY_JWT, BrokerClient
from broker.oauth.rfc9068 import IssuedAccessToken

_REPEATED = ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti", "authorization_details")


class IntrospectionEndpoint(_IntrospectionEndpoint):
    CLIENT_AUTH_METHODS: ClassVar[list[str]] = [CLIENT_SECRET_BASIC, PRIVATE_KEY_JWT]

    def __init__(self, server: Any, find_token: Callable[[str], IssuedAccessToken | None]) -> None:
        super().__init__(server)
        self._find_token = find_token

    def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedAccessToken | None:
        # The hint is only a hint (§2.1): the broker issues access tokens only, whatever it says.
        return self._find_token(token_string)

    def check_permission(self, token: IssuedAccessToken, client: BrokerClient, request: object) -> bool:
        # A client sees its own tokens only: introspection must not tell one service what another holds.
        return token.check_client(client)

    def introspect_token(self, token: IssuedAccessToken) -> dict[str, Any]:
        body = {"active": True, "token_type": "Bearer"}
        body.update({name: token.claims[name] for name in _REPEATED if name in token.claims})
        return body
