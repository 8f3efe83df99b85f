"""RFC 8414: OAuth 2.0 authorization server metadata. https://www.rfc-editor.org/rfc/rfc8414

Served at ``/.well-known/oauth-authorization-server``; the test suite holds it to authlib's own
``AuthorizationServerMetadata.validate()``.

``response_types_supported`` is REQUIRED by §2 even for a server without an authorization endpoint: the
broker answers ``["none"]`` (the registered response type for "no credential from the authorization
endpoint"), the only truthful value, since the broker issues tokens by client credentials alone.
"""

from __future__ import annotations

from typing import Any

from broker.oauth.clients import ASSERTION_ALGORITHMS, CLIENT_SECRET_BASIC, PRIVATE_KEY_JWT
from broker.oauth.rfc9396 import TYPES_SUPPORTED
from broker.oauth.server import INTROSPECTION_PATH, REVOCATION_PATH, TOKEN_PATH, BrokerAuthorizationServer

JWKS_PATH = "/.well-known/jwks.json"


def metadata(server: BrokerAuthorizationServer) -> dict[str, Any]:
    auth_methods = [PRIVATE_KEY_JWT, CLIENT_SECRET_BASIC]
    algorithms = list(ASSERTION_ALGORITHMS)
    return {
        "issuer": server.issuer,
        "token_endpoint": server.url(TOKEN_PATH),
        "jwks_uri": server.url(JWKS_PATH),
        "scopes_supported": list(server.scopes_supported or []),
        "response_types_supported": ["none"],
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": algorithms,
        "service_documentation": server.url("/docs"),
        "ui_locales_supported": ["fr", "en"],
        "revocation_endpoint": server.url(REVOCATION_PATH),
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_signing_alg_values_supported": algorithms,
        "introspection_endpoint": server.url(INTROSPECTION_PATH),
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_signing_alg_values_supported": algorithms,
        # RFC 9396 §10.1
        "authorization_details_types_supported": TYPES_SUPPORTED,
    }
