"""OAuth endpoints for city services and data providers, and ``GET /v1/client`` (who am I?).

The ``/oauth/*`` endpoints answer in RFC 6749 JSON (what client libraries parse), not problem details.
Handlers that do no I/O are ``async`` so that FastAPI does not hand them to the thread pool.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response, Security
from pydantic import BaseModel

from broker.oauth.guard import AuthorizationServerDep, require_client
from broker.oauth.principal import ClientPrincipal
from broker.oauth.rfc8414 import metadata
from broker.oauth.server import INTROSPECTION_PATH, REVOCATION_PATH, TOKEN_PATH

router = APIRouter(tags=["oauth"])


def _form(*fields: str, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """OpenAPI for a form-encoded body (the handlers read it themselves, for authlib)."""
    schema = {"type": "object", "properties": {f: {"type": "string"} for f in fields}, "required": list(required)}
    return {"requestBody": {"required": True,
                            "content": {"application/x-www-form-urlencoded": {"schema": schema}}}}


_CLIENT_AUTH = ("client_assertion_type", "client_assertion")


@router.post(TOKEN_PATH, summary="Issue an access token (RFC 6749 §4.4, client credentials)",
             openapi_extra=_form("grant_type", "scope", "authorization_details", "resource", *_CLIENT_AUTH,
                                 required=("grant_type",)))
async def token(request: Request, server: AuthorizationServerDep) -> Response:
    return await server.respond(request, "token")


@router.post(INTROSPECTION_PATH, summary="Introspect one of the caller's tokens (RFC 7662)",
             openapi_extra=_form("token", "token_type_hint", *_CLIENT_AUTH, required=("token",)))
async def introspect(request: Request, server: AuthorizationServerDep) -> Response:
    return await server.respond(request, "introspection")


@router.post(REVOCATION_PATH, summary="Revoke one of the caller's tokens (RFC 7009)",
             openapi_extra=_form("token", "token_type_hint", *_CLIENT_AUTH, required=("token",)))
async def revoke(request: Request, server: AuthorizationServerDep) -> Response:
    return await server.respond(request, "revocation")


@router.get("/.well-known/oauth-authorization-server", summary="Authorization server metadata (RFC 8414)")
async def authorization_server_metadata(server: AuthorizationServerDep) -> dict[str, Any]:
    return metadata(server)


class ClientInfo(BaseModel):
    client_id: str
    service_id: str
    kind: str
    purposes: list[str]
    scopes: list[str]
    authorization_details: list[dict[str, Any]]
    token_expires_at: datetime


@router.get("/v1/client", summary="The calling client: its service, purposes and token scopes")
async def client(principal: Annotated[ClientPrincipal, Security(require_client)]) -> ClientInfo:
    return ClientInfo(
        client_id=principal.client_id,
        service_id=principal.service.id,
        kind=principal.service.kind,
        purposes=principal.purposes,
        scopes=sorted(principal.scopes),
        authorization_details=list(principal.authorization_details),
        token_expires_at=principal.expires_at,
    )
