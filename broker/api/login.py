"""Portal login (DESIGN §6): the form, password login, logout, and login through the city's OIDC provider.

``GET /login`` renders the form with a hidden ``csrf_token`` and sets the ``csrftoken`` cookie;
``POST /login`` (``email``, ``password``, ``csrf_token``, optional ``next``) sets the session cookie and
redirects (303) to ``next``, a local path only (no open redirect). Each login issues a new session id and a
new CSRF token. ``GET /login/oidc`` sends the browser to the provider; the provider sends it back to
``/login/oidc/callback``.
"""

from __future__ import annotations

import functools
from typing import Annotated
from urllib.parse import urlsplit

import jinja2
from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from broker.api.deps import RuntimeDep
from broker.api.portal import (
    SESSION_COOKIE,
    clear_session_cookie,
    client_address,
    csrf_token_for,
    is_https,
    issue_csrf_token,
    login_config,
    set_csrf_cookie,
    set_session_cookie,
)
from broker.identity.login import LoginFailed, PasswordLogin
from broker.identity.oidc import CALLBACK_PATH, OidcConfig, OidcLogin, OidcNotConfigured
from broker.runtime import Runtime

router = APIRouter(tags=["login"])

OIDC_BINDING_COOKIE = "oidc_binding"
OIDC_COOKIE_PATH = "/login/oidc"
LANGUAGES = ("fr", "en")
MESSAGES = {
    "fr": {"brand": "Consent Broker", "title": "Connexion", "email": "Adresse e-mail", "password": "Mot de passe",
           "submit": "Se connecter", "oidc": "Se connecter avec le compte de la ville", "language": "Langue",
           "other_language": "English", "failed": "L’adresse e-mail ou le mot de passe n’est pas correct."},
    "en": {"brand": "Consent Broker", "title": "Log in", "email": "Email address", "password": "Password",
           "submit": "Log in", "oidc": "Log in with the city account", "language": "Language",
           "other_language": "Français", "failed": "The email address or the password is not right."},
}
NO_FRAMING = {"Cache-Control": "no-store", "X-Frame-Options": "DENY",
              "Content-Security-Policy": "frame-ancestors 'none'"}


@functools.cache
def _templates() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("broker", "templates"), autoescape=True)


def safe_next(value: str | None) -> str:
    """A path on this broker, or ``/``: never another site (open redirect), not even ``//host`` or ``/\\host``."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(ord(c) < 0x21 for c in value):
        return "/"
    parts = urlsplit(value)
    return value if not parts.scheme and not parts.netloc else "/"


def choose_language(request: Request, asked: str | None) -> str:
    if asked in LANGUAGES:
        return asked
    ranked = []
    for item in request.headers.get("accept-language", "").split(","):
        tag, _, params = item.strip().partition(";")
        try:
            q = float(params.strip()[2:]) if params.strip().startswith("q=") else 1.0
        except ValueError:
            q = 0.0
        ranked.append((q, tag.split("-")[0].strip().lower()))
    for _, primary in sorted(ranked, key=lambda r: -r[0]):
        if primary in LANGUAGES:
            return primary
    return LANGUAGES[0]


def _oidc(request: Request, runtime: Runtime) -> OidcLogin:
    """The app's OIDC client, built on first use (it caches the provider's metadata and keys)."""
    state = request.app.state
    if not hasattr(state, "oidc_login"):
        config = OidcConfig.from_settings(runtime.settings)
        state.oidc_login = None if config is None else OidcLogin(
            config, runtime.engine, runtime.secrets, runtime.clock, login_config(runtime).timeouts)
    if state.oidc_login is None:
        raise OidcNotConfigured("This broker has no identity provider configured.")
    return state.oidc_login


def _form(request: Request, runtime: Runtime, *, lang: str, next_path: str, error: str | None = None,
          email: str = "", status_code: int = 200) -> HTMLResponse:
    token = csrf_token_for(request, runtime)
    html = _templates().get_template("login.html").render(
        t=MESSAGES[lang], lang=lang, other_lang=next(x for x in LANGUAGES if x != lang), next=next_path,
        csrf_token=token, error=error, email=email, local_accounts=runtime.settings.local_accounts,
        oidc=bool(runtime.settings.oidc_issuer))
    response = HTMLResponse(html, status_code=status_code, headers=NO_FRAMING)
    set_csrf_cookie(response, request, token)
    return response


def _logged_in(request: Request, runtime: Runtime, token: str, next_path: str) -> RedirectResponse:
    response = RedirectResponse(next_path, status_code=303)
    set_session_cookie(response, request, token, runtime)
    set_csrf_cookie(response, request, issue_csrf_token(runtime))  # a fresh token for the new session
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, runtime: RuntimeDep, next: Annotated[str | None, Query()] = None,
               lang: Annotated[str | None, Query()] = None) -> HTMLResponse:
    return _form(request, runtime, lang=choose_language(request, lang), next_path=safe_next(next))


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, runtime: RuntimeDep, email: Annotated[str, Form(max_length=320)],
          password: Annotated[str, Form(max_length=1024)], next: Annotated[str | None, Form()] = None,
          lang: Annotated[str | None, Form()] = None) -> Response:
    next_path, language = safe_next(next), choose_language(request, lang)
    service = PasswordLogin(runtime.engine, runtime.secrets, runtime.clock, login_config(runtime))
    try:
        token, _account = service.login(email, password, address=client_address(request),
                                        user_agent=request.headers.get("user-agent"),
                                        replacing=request.cookies.get(SESSION_COOKIE))
    except LoginFailed:
        return _form(request, runtime, lang=language, next_path=next_path, error=MESSAGES[language]["failed"],
                     email=email, status_code=401)
    return _logged_in(request, runtime, token, next_path)


@router.post("/logout")
def logout(request: Request, runtime: RuntimeDep) -> Response:
    PasswordLogin(runtime.engine, runtime.secrets, runtime.clock, login_config(runtime)).logout(
        request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookie(response, request)
    return response


@router.get("/login/oidc")
async def oidc_start(request: Request, runtime: RuntimeDep,
                     next: Annotated[str | None, Query()] = None) -> RedirectResponse:
    start = await _oidc(request, runtime).start(safe_next(next))
    response = RedirectResponse(start.url, status_code=302, headers={"Cache-Control": "no-store"})
    response.set_cookie(OIDC_BINDING_COOKIE, start.binding, max_age=600, path=OIDC_COOKIE_PATH, httponly=True,
                        samesite="lax", secure=is_https(request))
    return response


@router.get(CALLBACK_PATH)
async def oidc_callback(request: Request, runtime: RuntimeDep, code: Annotated[str | None, Query()] = None,
                        state: Annotated[str | None, Query()] = None,
                        error: Annotated[str | None, Query()] = None) -> RedirectResponse:
    token, next_path = await _oidc(request, runtime).finish(
        state=state, code=code, error=error, binding=request.cookies.get(OIDC_BINDING_COOKIE),
        user_agent=request.headers.get("user-agent"), replacing=request.cookies.get(SESSION_COOKIE))
    response = _logged_in(request, runtime, token, next_path)
    response.delete_cookie(OIDC_BINDING_COOKIE, path=OIDC_COOKIE_PATH, httponly=True, samesite="lax",
                           secure=is_https(request))
    return response
