"""A small OpenID provider for the test suite, served over real HTTP on a loopback port.

Enough of OpenID Connect Core and Discovery to log a test user in with the Authorization Code flow:
discovery, ``/authorize`` (auto-approves the configured user and redirects back with a code), ``/token``
(checks the client secret, the redirect URI and the PKCE S256 verifier; answers an ES256 ID token signed
with joserfc, carrying the nonce), ``/jwks`` and ``/userinfo``. Knobs let a test make it misbehave (wrong
nonce, wrong audience) to see the broker refuse.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlencode

import uvicorn
from joserfc import jwt
from joserfc.jwk import ECKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TestUser:
    __test__ = False  # not a pytest test class

    sub: str = "city-user-0001"
    email: str = "camille.martin@lyon.example"
    email_verified: bool = True
    given_name: str = "Camille"
    family_name: str = "Martin"
    birthdate: str | None = "1988-04-12"
    locale: str | None = "fr"

    def claims(self) -> dict[str, Any]:
        claims: dict[str, Any] = {"sub": self.sub, "email": self.email, "email_verified": self.email_verified,
                                  "given_name": self.given_name, "family_name": self.family_name,
                                  "name": f"{self.given_name} {self.family_name}"}
        if self.birthdate:
            claims["birthdate"] = self.birthdate
        if self.locale:
            claims["locale"] = self.locale
        return claims


@dataclass
class _Grant:
    user: TestUser
    client_id: str
    redirect_uri: str
    nonce: str | None
    code_challenge: str


@dataclass
class OidcTestProvider:
    __test__ = False

    client_id: str = "consent-broker"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    redirect_uris: list[str] = field(default_factory=list)
    user: TestUser = field(default_factory=TestUser)
    # misbehaviour, for tests of the broker's checks
    nonce_override: str | None = None
    audience_override: str | None = None
    # what happened, for assertions
    token_requests: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.key = ECKey.generate_key("P-256", private=True)
        self.kid = self.key.thumbprint()
        self._grants: dict[str, _Grant] = {}
        self._tokens: dict[str, TestUser] = {}
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.issuer = ""

    # -- running ------------------------------------------------------------------------------------------
    def start(self) -> OidcTestProvider:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.issuer = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(self.app(), log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the test OIDC provider did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    def reset(self) -> None:
        self.user = TestUser()
        self.nonce_override = self.audience_override = None
        self.redirect_uris = []
        self.token_requests.clear()

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/.well-known/openid-configuration", self.discovery),
            Route("/authorize", self.authorize),
            Route("/token", self.token, methods=["POST"]),
            Route("/jwks", self.jwks),
            Route("/userinfo", self.userinfo),
        ])

    # -- endpoints ----------------------------------------------------------------------------------------
    async def discovery(self, _request: Request) -> Response:
        return JSONResponse({
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "scopes_supported": ["openid", "email", "profile"],
        })

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        if q.get("client_id") != self.client_id:
            return PlainTextResponse("unknown client", status_code=400)
        if self.redirect_uris and q.get("redirect_uri") not in self.redirect_uris:
            return PlainTextResponse("redirect_uri not registered", status_code=400)
        redirect_uri = q.get("redirect_uri", "")
        back = {"state": q["state"]} if q.get("state") else {}
        if (q.get("response_type") != "code" or "openid" not in q.get("scope", "").split()
                or q.get("code_challenge_method") != "S256" or not q.get("code_challenge")):
            back["error"] = "invalid_request"
        else:
            back["code"] = secrets.token_urlsafe(24)
            self._grants[back["code"]] = _Grant(user=self.user, client_id=self.client_id, redirect_uri=redirect_uri,
                                                nonce=q.get("nonce"), code_challenge=q["code_challenge"])
        return RedirectResponse(f"{redirect_uri}?{urlencode(back)}", status_code=302)

    async def token(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        self.token_requests.append(form)
        client_id, client_secret = self._basic(request)
        if client_id != self.client_id or not secrets.compare_digest(client_secret or "", self.client_secret):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        grant = self._grants.pop(form.get("code", ""), None)
        if form.get("grant_type") != "authorization_code" or grant is None:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        if form.get("redirect_uri") != grant.redirect_uri:
            return JSONResponse({"error": "invalid_grant", "error_description": "redirect_uri"}, status_code=400)
        verifier = form.get("code_verifier", "")
        if not verifier or _b64u(hashlib.sha256(verifier.encode()).digest()) != grant.code_challenge:
            return JSONResponse({"error": "invalid_grant", "error_description": "PKCE"}, status_code=400)
        access_token = secrets.token_urlsafe(32)
        self._tokens[access_token] = grant.user
        now = int(time.time())
        claims = {**grant.user.claims(), "iss": self.issuer, "aud": self.audience_override or grant.client_id,
                  "iat": now, "exp": now + 300, "auth_time": now,
                  "at_hash": _b64u(hashlib.sha256(access_token.encode()).digest()[:16])}
        nonce = self.nonce_override or grant.nonce
        if nonce:
            claims["nonce"] = nonce
        id_token = jwt.encode({"alg": "ES256", "kid": self.kid, "typ": "JWT"}, claims, self.key,
                              algorithms=["ES256"])
        return JSONResponse({"access_token": access_token, "token_type": "Bearer", "expires_in": 300,
                             "id_token": id_token, "scope": "openid email profile"},
                            headers={"Cache-Control": "no-store"})

    async def jwks(self, _request: Request) -> Response:
        public = self.key.as_dict(private=False)
        public.update({"kid": self.kid, "use": "sig", "alg": "ES256"})
        return JSONResponse({"keys": [public]})

    async def userinfo(self, request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        user = self._tokens.get(token) if scheme.lower() == "bearer" else None
        if user is None:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse(user.claims())

    @staticmethod
    def _basic(request: Request) -> tuple[str | None, str | None]:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None, None
        try:
            client_id, _, secret = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return None, None
        return unquote(client_id), unquote(secret)
