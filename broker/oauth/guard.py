"""The FastAPI dependency that guards resource endpoints with the broker's access tokens (RFC 6750).

A route states what it needs, with names from broker.scopes::

    @router.get("/v1/budgets")
    def budgets(client: Annotated[ClientPrincipal, Security(require_client, scopes=[ANY_PURPOSE])]): ...

The dependency checks transport (broker.oauth.transport), then the token: signature (ES256, a key of ours by
``kid``), ``typ: at+jwt``, issuer, audience, expiry, that it is on record and unrevoked and its client still
enabled, and the scopes. The handler receives a :class:`ClientPrincipal`. Failures are problem details with
RFC 6750 §3 challenges: no token → 401 ``Bearer realm=...``; a bad token → 401 ``error="invalid_token"``;
too little scope → 403 ``error="insufficient_scope"``.

``fastapi.security.OAuth2`` (client credentials flow) puts the scheme and each route's scopes in OpenAPI.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import OAuth2, SecurityScopes

from broker.oauth.principal import ClientPrincipal
from broker.oauth.server import TOKEN_PATH, BrokerAuthorizationServer
from broker.scopes import REQUIREMENTS

oauth2_client_credentials = OAuth2(
    flows=OAuthFlows(clientCredentials=OAuthFlowClientCredentials(tokenUrl=TOKEN_PATH, scopes=REQUIREMENTS)),
    scheme_name="oauth2",
    description="Access tokens for city services and data providers (client credentials; private_key_jwt or "
                "client_secret_basic). Purpose scopes are purpose:<id>, one per purpose in the policy.",
    auto_error=False,  # the guard answers itself, with RFC 6750 challenges
)


async def get_authorization_server(request: Request) -> BrokerAuthorizationServer:
    # ``async`` only so that FastAPI does not send this attribute lookup to the thread pool.
    return request.app.state.oauth


def require_client(
    request: Request,
    security_scopes: SecurityScopes,
    server: Annotated[BrokerAuthorizationServer, Depends(get_authorization_server)],
    _authorization: Annotated[str | None, Depends(oauth2_client_credentials)],
) -> ClientPrincipal:
    # A plain ``def``: token checks read the database, so FastAPI runs this in the thread pool.
    return server.authenticate_resource_request(request, security_scopes.scopes)


AuthorizationServerDep = Annotated[BrokerAuthorizationServer, Depends(get_authorization_server)]
