"""Helpers for the OAuth tests: signing client assertions and tokens, asking for tokens, test-only routes."""

from __future__ import annotations

import json
import secrets
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Security
from joserfc import jwt
from joserfc.jwk import ECKey, Key, OctKey

from broker.oauth.guard import require_client
from broker.oauth.principal import ClientPrincipal
from broker.scopes import ANY_PURPOSE, INGEST
from broker.timeutil import FixedClock

ISSUER = "http://127.0.0.1:8000"
TOKEN_URL = ISSUER + "/oauth/token"
LOOPBACK = ("127.0.0.1", 50123)
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def assertion(key: Key, client_id: str, clock: FixedClock, *, lifetime: int = 60, audience: str = TOKEN_URL,
              alg: str = "ES256", jti: str | None = None, iat: bool = True, **claims: Any) -> str:
    now = int(clock.now().timestamp())
    payload: dict[str, Any] = {"iss": client_id, "sub": client_id, "aud": audience, "exp": now + lifetime,
                               "jti": jti or secrets.token_urlsafe(16)}
    if iat:
        payload["iat"] = now
    payload.update(claims)
    header = {"alg": alg}
    if isinstance(key, ECKey) and key.kid:
        header["kid"] = key.kid
    return jwt.encode(header, payload, key, algorithms=[alg])


def hs256_with_public_key(key: ECKey, client_id: str, clock: FixedClock) -> str:
    """The key-confusion attack: an HMAC keyed with the client's *public* JWK, which anyone can fetch."""
    public = json.dumps(key.as_dict(private=False)).encode()
    return assertion(OctKey.import_key(public), client_id, clock, alg="HS256")


def assertion_form(signed: str, **form: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": signed, **form}


def request_token(api: httpx.Client, key: Key, client_id: str, clock: FixedClock, **form: str) -> httpx.Response:
    return api.post("/oauth/token", data=assertion_form(assertion(key, client_id, clock), **form))


def access_token(api: httpx.Client, key: Key, client_id: str, clock: FixedClock, **form: str) -> str:
    response = request_token(api, key, client_id, clock, **form)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims_of(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a compact JWS, unverified (the tests verify separately where it matters)."""
    from joserfc import jws

    obj = jws.extract_compact(token.encode())
    return obj.headers(), json.loads(obj.payload)


def guarded_test_routes() -> APIRouter:
    """Routes that declare scope requirements, to test the guard the way later endpoints will use it."""
    router = APIRouter()

    @router.get("/test/any-purpose")
    def any_purpose(client: Annotated[ClientPrincipal, Security(require_client, scopes=[ANY_PURPOSE])]
                    ) -> dict[str, Any]:
        return {"client_id": client.client_id, "purposes": client.purposes}

    @router.get("/test/ingest")
    def ingest(client: Annotated[ClientPrincipal, Security(require_client, scopes=[INGEST])]) -> dict[str, Any]:
        return {"client_id": client.client_id}

    @router.get("/test/ceiling/{purpose}/{dataset}")
    def ceiling(purpose: str, dataset: str,
                client: Annotated[ClientPrincipal, Security(require_client, scopes=[ANY_PURPOSE])]) -> dict[str, Any]:
        return {"ceiling": client.epsilon_ceiling(purpose, dataset)}

    return router
