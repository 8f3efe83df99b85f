"""What every portal page shares: the template environments (one per language), who is logged in, and
rendering with the CSRF token in place for the page's forms."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from broker.api.login import safe_next
from broker.api.portal import SESSION_COOKIE, csrf_token_for, login_config, set_csrf_cookie
from broker.db import session_scope
from broker.identity.accounts import Role
from broker.identity.models import Citizen
from broker.identity.sessions import Principal, SessionStore
from broker.runtime import Runtime
from consent_ui import i18n

NO_STORE = {"Cache-Control": "no-store"}


def _number(value: float | int | None, lang: str, digits: int = 2) -> str:
    if value is None or isinstance(value, jinja2.Undefined):
        return "—"
    if isinstance(value, int) or float(value).is_integer():
        text = f"{int(value):,}".replace(",", "\u202f" if lang == "fr" else ",")
        return text
    text = f"{value:,.{digits}f}"
    return text.replace(",", "\u202f").replace(".", ",") if lang == "fr" else text


def _when(value: datetime | date | str | None, lang: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if isinstance(value, datetime):
        return value.strftime("%d/%m/%Y %H:%M UTC" if lang == "fr" else "%Y-%m-%d %H:%M UTC")
    return value.strftime("%d/%m/%Y" if lang == "fr" else "%Y-%m-%d")


@functools.cache
def environment(lang: str) -> jinja2.Environment:
    # One environment per language: installing translations mutates an environment, and pages render
    # concurrently in several threads.
    env = jinja2.Environment(loader=jinja2.PackageLoader("consent_ui", "templates"), autoescape=True,
                             extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True)
    env.install_gettext_translations(i18n.translations(lang), newstyle=True)  # type: ignore[attr-defined]
    env.globals["lang"] = lang
    env.filters["number"] = lambda v, digits=2: _number(v, lang, digits)
    env.filters["when"] = lambda v: _when(v, lang)
    env.filters["local"] = lambda text: getattr(text, lang) if text is not None else ""
    return env


def principal_of(request: Request, runtime: Runtime) -> Principal | None:
    with session_scope(runtime.engine) as session:
        store = SessionStore(session, runtime.clock, login_config(runtime).timeouts)
        return store.resolve(request.cookies.get(SESSION_COOKIE))


def account_locale(runtime: Runtime, principal: Principal | None) -> str | None:
    if principal is None or principal.citizen_id is None:
        return None
    with session_scope(runtime.engine) as session:
        citizen = session.get(Citizen, principal.citizen_id)
        return citizen.locale if citizen is not None else None


@dataclass(frozen=True)
class Visit:
    """One request to a portal page: the runtime, who is there, and in which language."""

    request: Request
    runtime: Runtime
    principal: Principal | None
    lang: str

    @classmethod
    def of(cls, request: Request, runtime: Runtime) -> Visit:
        principal = principal_of(request, runtime)
        return cls(request, runtime, principal, i18n.choose(request, account_locale(runtime, principal)))

    @property
    def is_citizen(self) -> bool:
        return self.principal is not None and self.principal.role == Role.citizen.value \
            and self.principal.citizen_id is not None

    @property
    def is_auditor(self) -> bool:
        return self.principal is not None and self.principal.role == Role.auditor.value

    def render(self, template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
        token = csrf_token_for(self.request, self.runtime)
        html = environment(self.lang).get_template(template).render(
            csrf_token=token, principal=self.principal, is_citizen=self.is_citizen, is_auditor=self.is_auditor,
            current_path=self.request.url.path, here=_here(self.request), policy=self.runtime.policy, **context)
        response = HTMLResponse(html, status_code=status_code, headers=NO_STORE)
        set_csrf_cookie(response, self.request, token)
        return response


def _here(request: Request) -> str:
    """This page's local path and query, for a ``next`` that brings the person back here."""
    return safe_next(request.url.path + (f"?{request.url.query}" if request.url.query else ""))


def to_login(request: Request) -> RedirectResponse:
    return RedirectResponse(f"/login?next={quote(_here(request), safe='/')}", status_code=303)


def back(path: str, **flash: str) -> RedirectResponse:
    """Post/redirect/get: the page to show after a form, with a short message key in the query string."""
    query = "&".join(f"{k}={quote(v)}" for k, v in flash.items())
    return RedirectResponse(f"{path}?{query}" if query else path, status_code=303)
