"""The portal session at the HTTP edge: its cookies and the dependencies that turn a cookie into a principal.

Cookies: ``broker_session`` (HttpOnly: scripts never see it) and ``csrftoken`` (readable by the portal's own
scripts, which echo it in ``X-CSRF-Token``). Both SameSite=Lax, so a cross-site subrequest or form post
arrives without them, and Secure whenever the request came over https (behind a TLS proxy the scheme is the
one the proxy forwarded, see the forwarded-headers setting).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Response

from broker.api.csrf import CSRF_COOKIE, csrf_key, csrf_token_valid, new_csrf_token
from broker.api.deps import RuntimeDep, SessionDep
from broker.audit.refusals import account_refused
from broker.db import session_scope
from broker.errors import Forbidden
from broker.identity.accounts import Role
from broker.identity.login import LoginConfig
from broker.identity.sessions import NotAuthenticated, Principal, SessionStore
from broker.oauth.guard import audit_refusal, route_of
from broker.runtime import Runtime

SESSION_COOKIE = "broker_session"


def login_config(runtime: Runtime) -> LoginConfig:
    return LoginConfig.from_settings(runtime.settings)


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def set_session_cookie(response: Response, request: Request, token: str, runtime: Runtime) -> None:
    max_age = int(login_config(runtime).timeouts.absolute.total_seconds())
    response.set_cookie(SESSION_COOKIE, token, max_age=max_age, path="/", httponly=True, samesite="lax",
                        secure=is_https(request))


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=is_https(request))


def csrf_token_for(request: Request, runtime: Runtime) -> str:
    """The browser's current CSRF token if this broker issued it, else a new one."""
    current = request.cookies.get(CSRF_COOKIE)
    return current if current and csrf_token_valid(csrf_key(runtime.secrets), current) else issue_csrf_token(runtime)


def issue_csrf_token(runtime: Runtime) -> str:
    return new_csrf_token(csrf_key(runtime.secrets))


def set_csrf_cookie(response: Response, request: Request, token: str) -> None:
    # Not HttpOnly: the portal's scripts read it to send X-CSRF-Token (double submit).
    response.set_cookie(CSRF_COOKIE, token, path="/", httponly=False, samesite="lax", secure=is_https(request))


def current_principal(request: Request, runtime: RuntimeDep) -> Principal:
    with session_scope(runtime.engine) as session:
        store = SessionStore(session, runtime.clock, login_config(runtime).timeouts)
        principal = store.resolve(request.cookies.get(SESSION_COOKIE))
    if principal is None:
        # A service's access token is no portal session: its refusal is logged by the service (audit_refusal
        # logs only a token this broker issued; anything else names no one).
        audit_refusal(request.app.state.oauth, request, "service-token-on-portal")
        raise NotAuthenticated("Log in to the portal first.")
    return principal


def current_citizen(request: Request, runtime: RuntimeDep,
                    principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if principal.role != Role.citizen.value or principal.citizen_id is None:
        account_refused(runtime.engine, runtime.clock.now(), principal.account_id, resource=route_of(request),
                        reason=f"role {principal.role} has no citizen's space")
        raise Forbidden("This is a citizen's own space; staff accounts have none.")
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]
CitizenDep = Annotated[Principal, Depends(current_citizen)]
UnitOfWork = SessionDep
