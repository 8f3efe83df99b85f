"""RFC 7009: OAuth 2.0 token revocation. https://www.rfc-editor.org/rfc/rfc7009

authlib's :class:`RevocationEndpoint` over the broker's own access tokens. JWT access tokens cannot be
revoked by themselves (authlib's ``rfc9068.JWTRevocationEndpoint`` refuses to try), so the broker records
every ``jti`` it issues and marks the row revoked; the resource guard reads that row on every request, on
every worker. A client may revoke only its own tokens (§2.1; authlib answers ``invalid_grant`` otherwise); a
token that is not ours, or already expired, gets the plain 200 of §2.2.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from authlib.oauth2.rfc7009 import RevocationEndpoint as _RevocationEndpoint

from broker.oauth.clients import CLIENT_SECRET_BASIC, PRIVATE_KEY_JWT
from broker.oauth.rfc9068 import IssuedAccessToken


class RevocationEndpoint(_RevocationEndpoint):
    CLIENT_AUTH_METHODS: ClassVar[list[str]] = [CLIENT_SECRET_BASIC, PRIVATE_KEY_JWT]

    def __init__(self, server: Any, find_token: Callable[[str], IssuedAccessToken | None],
                 revoke: Callable[[IssuedAccessToken], None]) -> None:
        super().__init__(server)
        self._find_token = find_token
        self._revoke = revoke

    def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedAccessToken | None:
        return self._find_token(token_string)

    def revoke_token(self, token: IssuedAccessToken, request: object) -> None:
        self._revoke(token)
