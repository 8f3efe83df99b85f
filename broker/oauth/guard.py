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

Refusals of a token this broker issued (expired, revoked, its client disabled, too little scope) are logged as
``authorization.failed`` by the token's service, in a transaction of their own. A request with no token, or a
bearer string that is not one of ours, names no one and is refused without an entry (see
:mod:`broker.audit.refusals`). The token itself is never logged, only its ``jti``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import OAuth2, SecurityScopes

from broker.audit import AuditEvent, actions
from broker.audit.refusals import record_apart
from broker.oauth.errors import InsufficientScope, InvalidToken
from broker.oauth.principal import ClientPrincipal
from broker.oauth.rfc9068 import IssuedAccessToken, read_issued_token
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
    try:
        return server.authenticate_resource_request(request, security_scopes.scopes)
    except (InvalidToken, InsufficientScope) as refused:
        needed = security_scopes.scopes if isinstance(refused, InsufficientScope) else None
        audit_refusal(server, request, refused.code, required=needed)
        raise


def presented_token(server: BrokerAuthorizationServer, request: Request) -> IssuedAccessToken | None:
    """The bearer token of ``request`` if this broker issued it (expired or not), else None."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return read_issued_token(server.validator, token.strip(), server.store.token_state, server.now())


def audit_refusal(server: BrokerAuthorizationServer, request: Request, reason: str,
                  required: list[str] | None = None) -> None:
    """Log that the service holding ``request``'s token was refused; nothing if the token names no service."""
    issued = presented_token(server, request)
    if issued is None or issued.state is None:
        return
    details: dict[str, object] = {"resource": route_of(request), "reason": reason, "jti": issued.jti}
    if required:
        details["required"] = list(required)
    record_apart(server.runtime.engine, AuditEvent(actor=actions.service(issued.state.service_id),
                                                   action=actions.AUTHORIZATION_FAILED, details=details),
                 server.runtime.clock.now())


def route_of(request: Request) -> str:
    """The route's path template (``/v1/me/receipts/{record_id}``), never the path asked for: that is free
    input, and may hold another citizen's identifiers."""
    return str(getattr(request.scope.get("route"), "path", "") or "unrouted")


AuthorizationServerDep = Annotated[BrokerAuthorizationServer, Depends(get_authorization_server)]
