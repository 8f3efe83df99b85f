"""Errors of the OAuth layer.

The token, introspection and revocation endpoints answer in OAuth's own wire format (RFC 6749 §5.2 JSON,
which client libraries parse), produced by authlib's ``OAuth2Error`` classes. Resource endpoints answer
RFC 9457 problem details like the rest of the API, with the RFC 6750 §3 ``WWW-Authenticate`` challenge that
bearer clients look for: the classes below carry it in ``headers`` (rendered by broker.api.problems).
"""

from __future__ import annotations

from broker.errors import BrokerError

REALM = "consent-broker"


def safe_description(text: str) -> str:
    """RFC 6749 §5.2 and RFC 6750 §3: descriptions are printable ASCII without '"' or '\\'."""
    return "".join(c if 0x20 <= ord(c) <= 0x7E and c not in '"\\' else "?" for c in text)


def _challenge(**params: str) -> str:
    return "Bearer " + ", ".join(f'{key}="{safe_description(value)}"' for key, value in params.items())


class Unauthenticated(BrokerError):
    """No bearer token at all: RFC 6750 §3.1 says the challenge then carries no error code."""

    code, status, title = "unauthorized", 401, "Authentication required"

    def __init__(self, detail: str = "this endpoint needs a bearer access token") -> None:
        super().__init__(detail)
        self.headers = {"WWW-Authenticate": _challenge(realm=REALM)}


class InvalidToken(BrokerError):
    code, status, title = "invalid-token", 401, "Invalid access token"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.headers = {"WWW-Authenticate": _challenge(realm=REALM, error="invalid_token", error_description=detail)}


class InsufficientScope(BrokerError):
    code, status, title = "insufficient-scope", 403, "Insufficient scope"

    def __init__(self, detail: str, *, required: list[str]) -> None:
        super().__init__(detail, required_scopes=required)
        self.headers = {"WWW-Authenticate": _challenge(realm=REALM, error="insufficient_scope",
                                                       error_description=detail, scope=" ".join(required))}


class HttpsRequired(BrokerError):
    """Plain http outside loopback (see broker.oauth.transport)."""

    code, status, title = "https-required", 403, "HTTPS required"
