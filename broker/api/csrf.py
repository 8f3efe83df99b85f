"""Cross-site request forgery protection for cookie-authenticated requests (DESIGN §6).

Two independent checks on every state-changing request (POST, PUT, PATCH, DELETE) that carries the portal
session cookie, and on ``POST /login`` itself (login CSRF would log a victim into the attacker's account):

1. **Origin** (OWASP CSRF cheat sheet, "verifying origin with standard headers"): ``Origin``, or the origin
   of ``Referer`` when there is no ``Origin``, must be the broker's own: its configured public URL or the
   URL the request was addressed to. Browsers send ``Origin`` on every cross-site and same-site POST, PUT,
   PATCH and DELETE, so a request with neither header is refused too.
2. **Double submit**: the ``csrftoken`` cookie must equal the ``X-CSRF-Token`` header, or the ``csrf_token``
   field of a URL-encoded form, compared in constant time. A page on another origin can neither read the
   cookie nor set the header. The token also carries an HMAC under a key derived from the pepper, so a
   cookie planted by a sibling subdomain (cookie tossing) is refused as well.

Requests without the session cookie (machine clients with Bearer tokens) are left alone: they carry no
ambient authority a third-party page could borrow. Failures answer 403 ``csrf-failed`` problem details.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.api.problems import problem_response
from broker.errors import Forbidden
from broker.keys import Secrets, b64u

CSRF_COOKIE = "csrftoken"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_FORM_BYTES = 64 * 1024  # forms checked here are small; bigger uploads send the header instead


class CsrfFailed(Forbidden):
    code, title = "csrf-failed", "Cross-site request refused"


def csrf_key(secrets_: Secrets) -> bytes:
    return hmac.new(secrets_.pepper, b"csrf-token-key", hashlib.sha256).digest()


def new_csrf_token(key: bytes) -> str:
    nonce = secrets.token_urlsafe(24)
    return f"{nonce}.{b64u(hmac.new(key, nonce.encode(), hashlib.sha256).digest())}"


def csrf_token_valid(key: bytes, token: str | None) -> bool:
    """Issued by this broker (not planted by another site); says nothing yet about who submitted it."""
    if not token or token.count(".") != 1:
        return False
    nonce, mac = token.split(".")
    expected = b64u(hmac.new(key, nonce.encode(), hashlib.sha256).digest())
    return hmac.compare_digest(mac.encode(), expected.encode())


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{parts.hostname.lower()}:{port}"


class CsrfMiddleware:
    def __init__(self, app: ASGIApp, *, secrets: Secrets, public_url: str, session_cookie: str,
                 always_checked: frozenset[str] = frozenset({"/login"})) -> None:
        self.app = app
        self.key = csrf_key(secrets)
        self.public_origin = _origin(public_url)
        self.session_cookie = session_cookie
        self.always_checked = always_checked

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in UNSAFE_METHODS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if self.session_cookie not in request.cookies and scope["path"] not in self.always_checked:
            await self.app(scope, receive, send)
            return
        failure = self._origin_failure(request)
        if failure is None:
            submitted = request.headers.get(CSRF_HEADER)
            content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if submitted is None and content_type == "application/x-www-form-urlencoded":
                body, receive = await _buffered(receive)
                if body is None:
                    failure = "The form is too large to check; send the X-CSRF-Token header."
                else:
                    submitted = (parse_qs(body.decode("latin-1")).get(CSRF_FIELD) or [None])[0]
            if failure is None:
                failure = self._token_failure(request.cookies.get(CSRF_COOKIE), submitted)
        if failure is not None:
            response = problem_response(CsrfFailed(failure).problem())
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _origin_failure(self, request: Request) -> str | None:
        claimed = request.headers.get("origin") or request.headers.get("referer")
        if not claimed:
            return "The request names no Origin or Referer."
        origin = _origin(claimed)
        if origin is None or origin not in {self.public_origin, _origin(str(request.base_url))}:
            return "The request comes from another site."
        return None

    def _token_failure(self, cookie: str | None, submitted: str | None) -> str | None:
        if not cookie or not submitted:
            return "The CSRF token is missing: send the csrftoken cookie's value as X-CSRF-Token."
        if not hmac.compare_digest(cookie.encode(), submitted.encode()) or not csrf_token_valid(self.key, cookie):
            return "The CSRF token does not match."
        return None


async def _buffered(receive: Receive) -> tuple[bytes | None, Receive]:
    """Read the whole request body (up to a limit) and a ``receive`` that replays it to the app."""
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return None, receive
        chunks.append(chunk)
        more = message.get("more_body", False)
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay
